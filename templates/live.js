// Live preview (python build.py serve): the server pushes each rebuild and the page patches the slides
// that changed, in place: no reload, the current slide and fragment stay. While a rebuild runs a demo, the
// page says which and for how long. R (or the speaker view's button) reruns the current slide's demos;
// their slides change only if every claim still holds.
(function () {
  var version = Number(document.querySelector('meta[name="deck-live-version"]').content);
  var overlay = panel("deck-build-error", "position:fixed;left:0;right:0;bottom:0;max-height:60%;overflow:auto;" +
    "margin:0;padding:1em;background:#5b0d0d;color:#fff;font:14px/1.4 monospace;z-index:100000;white-space:pre-wrap;");
  var badge = panel("deck-live-status", "position:fixed;right:1em;top:1em;padding:.3em .6em;border-radius:.3em;" +
    "background:#222;color:#fff;font:14px/1.4 sans-serif;z-index:100000;opacity:.85;");
  var speaker = null, running = null, building = null, timer = null, lastOutcome = "";

  function panel(id, css) {
    var element = document.createElement(id === "deck-build-error" ? "pre" : "div");
    element.id = id;
    element.setAttribute("role", id === "deck-build-error" ? "alert" : "status");
    element.style.cssText = css;
    element.hidden = true;
    document.body.appendChild(element);
    return element;
  }

  function element(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content.firstElementChild;
  }

  function patch(update) {
    if (update.reload) { location.reload(); return; }
    var at = Reveal.getIndices();
    if (update.slides != null) document.querySelector(".reveal .slides").innerHTML = update.slides;
    update.changed.forEach(function (slide) {
      var old = document.getElementById(slide.id);
      if (old) old.replaceWith(element(slide.html));
    });
    if (update.css != null) {
      var sheet = document.getElementById("deck-live-css") ||
        document.head.appendChild(document.createElement("style"));
      sheet.id = "deck-live-css";
      sheet.textContent = update.css;
      var linked = document.querySelector('link[href="assets/deck.css"]');
      if (linked) linked.disabled = true;
    }
    version = update.version;
    Reveal.sync();
    Reveal.slide(at.h, at.v, at.f);
    // reveal's notes plugin sends the speaker view the current slide's notes on slidechanged
    Reveal.getRevealElement().dispatchEvent(new CustomEvent("slidechanged", {bubbles: true,
      detail: {indexh: at.h, indexv: at.v, currentSlide: Reveal.getCurrentSlide()}}));
  }

  function showState(state) {
    if (state.version !== undefined && state.version !== version && !state.building) { location.reload(); return; }
    overlay.textContent = state.error ? "Build failed; showing the last good deck.\n\n" + state.error : "";
    overlay.hidden = !state.error;
    building = state.building ? {files: state.building.join(", ")} : null;
    if (!running) say(building ? "rebuilding: " + building.files + " changed …" : "");
  }

  function showDemo(started) {   // a rebuild runs a demo whose inputs changed
    if (!building) return;
    running = {demo: started.demo, started: performance.now(), estimate: estimate(started.demo),
               label: "rebuilding: " + building.files + " changed; running demo " + started.index + "/" +
                      started.count + " "};
    tick();
  }

  function say(text) {
    badge.textContent = text;
    badge.hidden = !text;
    var status = speaker && !speaker.closed && speaker.document.getElementById("deck-live-speaker-status");
    if (status) status.textContent = text || lastOutcome;
  }

  // --- rerun --------------------------------------------------------------------------------------------------
  function currentDemos() {
    var names = (Reveal.getCurrentSlide().getAttribute("data-demos") || "").split(" ");
    return names.filter(function (name) { return name; });
  }

  function estimate(demo) {
    var row = document.querySelector('.deck-facts [data-demo="' + demo + '"]');
    return row ? Number(row.getAttribute("data-seconds")) : NaN;
  }

  function rerunCurrent() {
    var demos = currentDemos();
    if (!demos.length) { lastOutcome = "this slide shows no demo result"; say(""); return; }
    demos.forEach(function (demo) {
      fetch("/__deck__/rerun?demo=" + encodeURIComponent(demo), {method: "POST", credentials: "same-origin"})
        .then(function (response) { return response.json(); })
        .then(function (reply) { if (reply.refused) { lastOutcome = "refused: " + reply.refused; say(""); } });
    });
  }

  function showRerun(rerun) {
    if (rerun.state === "running") {
      running = {demo: rerun.demo, started: performance.now(), estimate: estimate(rerun.demo)};
      tick();
      return;
    }
    running = null;
    lastOutcome = rerun.state === "updated" ? "rerun of " + rerun.demo + ": slides updated" :
      "rerun of " + rerun.demo + ": the slides keep the previous result, because\n" + rerun.reason;
    say("");
  }

  function tick() {
    clearTimeout(timer);
    if (!running) return;
    var elapsed = (performance.now() - running.started) / 1000;
    say((running.label || "rerunning ") + running.demo + ": " + elapsed.toFixed(1) + " s" +
        (isNaN(running.estimate) ? "" : " (last run took " + running.estimate.toFixed(1) + " s)"));
    timer = setTimeout(tick, 100);
  }

  // --- the speaker view (reveal's notes plugin popup) gets a rerun button and the reruns' outcome -----------
  function speakerConnected(popup) {
    if (popup === speaker && popup.document.getElementById("deck-live-speaker")) return;
    speaker = popup;
    var box = popup.document.createElement("div");
    box.id = "deck-live-speaker";
    box.style.cssText = "position:fixed;left:0;right:0;bottom:0;padding:.5em;background:#222;color:#fff;" +
      "font:14px/1.4 sans-serif;z-index:1000;white-space:pre-wrap;";
    var button = popup.document.createElement("button");
    button.type = "button";
    button.textContent = "Rerun this slide's demos (R)";
    button.addEventListener("click", rerunCurrent);
    var status = popup.document.createElement("span");
    status.id = "deck-live-speaker-status";
    status.style.marginLeft = "1em";
    status.textContent = lastOutcome;
    box.appendChild(button);
    box.appendChild(status);
    popup.document.body.appendChild(box);
  }

  window.addEventListener("message", function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (error) { return; }
    if (data && data.namespace === "reveal-notes" && (data.type === "connected" || data.type === "heartbeat") &&
        event.source) speakerConnected(event.source);
  });

  function start() {
    if (!/[?&]receiver\b/.test(location.search)) {
      Reveal.addKeyBinding({keyCode: 82, key: "R", description: "Rerun this slide's demos"}, rerunCurrent);
    }
    var events = new EventSource("/__deck__/events");
    events.addEventListener("update", function (event) { patch(JSON.parse(event.data)); });
    events.addEventListener("state", function (event) {
      var state = JSON.parse(event.data);
      if (!state.building && running && running.label) running = null;   // the rebuild's demos are done
      showState(state);
    });
    events.addEventListener("demo", function (event) { showDemo(JSON.parse(event.data)); });
    events.addEventListener("rerun", function (event) { showRerun(JSON.parse(event.data)); });
  }
  if (Reveal.isReady()) start(); else Reveal.on("ready", start);
})();
