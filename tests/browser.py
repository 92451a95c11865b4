"""Open a built deck in headless Chromium, the way the audience's browser would."""
from __future__ import annotations

# Every Content-Security-Policy violation of a page, recorded as the browser reports it (an init
# script runs outside the page's policy, before the page's own scripts).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  event => window.__violations.push(event.violatedDirective + ' ' + (event.blockedURI || event.sample)));
"""


def open_deck(context, url: str):
    """(page, console errors, requested URLs) for a deck, once reveal.js is ready."""
    errors: list[str] = []
    requests: list[str] = []
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    context.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=20000)
    return page, errors, requests


OVERFLOWING_SLIDES = """() => {
  const out = [];
  Array.from(document.querySelectorAll('.reveal .slides > section')).forEach((slide, index) => {
    Reveal.slide(index);
    const tall = slide.scrollHeight - slide.clientHeight, wide = slide.scrollWidth - slide.clientWidth;
    if (tall > 2 || wide > 2) out.push({index, title: (slide.querySelector('h1,h2') || {}).textContent, tall, wide});
  });
  return out;
}"""

FIGURE_SIZES = """() => Array.from(document.querySelectorAll('.reveal .slides section')).flatMap((slide, index) => {
  Reveal.slide(index);
  return Array.from(slide.querySelectorAll('figure.demo-figure > *')).map(el => {
    const box = el.getBoundingClientRect();
    return {index, tag: el.tagName.toLowerCase(), width: box.width, height: box.height,
            label: el.getAttribute('alt') || '', drawn: el.naturalWidth > 0,
            source: (el.getAttribute('src') || '').slice(0, 26)};
  });
})"""
