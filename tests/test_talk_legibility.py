"""Legible from the back row: every slide of the real talk, measured in Chromium at 1280x720.

Both the CPU build (`--size small`) and the deck built from the GPU results in `results/`. As
displayed (computed size times reveal's scale): body text and headings 36 px or more, code and
printed output 24 px, table cells 26 px, captions, badges and figure text 24 px; at most 12 lines a
listing; no element runs past the slide's box or is clipped inside its own; and no content slide
uses less than half of the slide's height (title, section, quote and closing slides may).
"""
from pathlib import Path

import pytest

from browser import open_deck
from conftest import REPO, copy_of_talk, run_build
from deck.browser import chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GPU_ARCHIVE = REPO / "results" / "h200-cuda.tar"   # the talk's results from an NVIDIA H200
SMALLEST_PX = {"body": 36, "heading": 36, "code": 24, "output": 24, "table": 26, "caption": 24, "aside": 24,
               "figure": 24}
SMALLEST_SLIDE_NUMBER_PX = 16
LONGEST_LISTING = 12
SPARSE_ROLES = {"title", "section", "quote", "closing"}   # slides that may use little of the slide's height

# Per slide: the smallest rendered text of each kind (every visible text node, classified by where it
# sits), the lines of each code listing shown, the share of the slide's height its content uses, and
# every element that leaves the slide's box or clips its own content.
MEASURE = """() => {
  const scale = document.querySelector('.reveal .slides').getBoundingClientRect().width / 1280;
  const kindOf = el =>
    el.closest('pre.demo-output') ? 'output' :
    el.closest('pre, code') ? 'code' :
    el.closest('figcaption, table caption, summary') ? 'caption' :
    el.closest('table') ? 'table' :
    el.closest('h1, h2, h3') ? 'heading' :
    el.closest('.measured-on, .citation, small, section.backup') ? 'aside' : 'body';
  // Not shown: speaker notes, and what a closed <details> holds (Chromium still lays it out).
  const unseen = el => el.closest('aside.notes') || el.closest('details:not([open])') && !el.closest('summary')
                       || !el.getClientRects().length;
  const slides = Array.from(document.querySelectorAll('.reveal .slides > section'));
  return slides.map((slide, index) => {
    Reveal.slide(index);
    const sizes = {}, overflows = [], listings = [];
    const box = slide.getBoundingClientRect();
    const walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      if (!node.textContent.trim() || unseen(el)) continue;
      const kind = kindOf(el), px = parseFloat(getComputedStyle(el).fontSize) * scale;
      if (px < (sizes[kind]?.px ?? Infinity)) sizes[kind] = {px, text: node.textContent.trim().slice(0, 40)};
    }
    slide.querySelectorAll('pre').forEach(pre => {
      if (pre.classList.contains('demo-output') || unseen(pre)) return;
      listings.push(pre.textContent.replace(/\\n+$/, '').split('\\n').length);
    });
    slide.querySelectorAll('figure.demo-figure img').forEach(img => {
      // The SVG's own text sizes (matplotlib writes them in px of its viewBox), scaled as the <img> is drawn.
      const svg = new DOMParser().parseFromString(atob(img.src.split(',')[1]), 'image/svg+xml').documentElement;
      const perUnit = img.getBoundingClientRect().width / svg.viewBox.baseVal.width;
      svg.querySelectorAll('text').forEach(text => {
        if (!text.textContent.trim()) return;
        const style = text.getAttribute('style') || '';
        const size = parseFloat((style.match(/font(?:-size)?:[^;]*?([0-9.]+)px/) || [])[1]);
        if (size && size * perUnit < (sizes.figure?.px ?? Infinity))
          sizes.figure = {px: size * perUnit, text: text.textContent.trim().slice(0, 40)};
      });
    });
    let top = Infinity, bottom = -Infinity;
    slide.querySelectorAll('*').forEach(el => {
      if (unseen(el) || el.closest('svg') && el.tagName.toLowerCase() !== 'svg') return;
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) return;
      top = Math.min(top, r.top); bottom = Math.max(bottom, r.bottom);
      const out = Math.max(box.left - r.left, r.right - box.right, box.top - r.top, r.bottom - box.bottom);
      const clipped = ['hidden', 'clip'].includes(getComputedStyle(el).overflowX) || ['hidden', 'clip'].includes(getComputedStyle(el).overflowY)
        ? Math.max(el.scrollWidth - el.clientWidth, el.scrollHeight - el.clientHeight) : 0;
      if (out > 2 || clipped > 2)
        overflows.push({tag: el.tagName.toLowerCase(), cls: String(el.className.baseVal ?? el.className), out, clipped,
                        text: el.textContent.trim().slice(0, 60)});
    });
    const title = (slide.querySelector('h1,h2') || {}).textContent || '';
    return {number: index + 1, title, classes: Array.from(slide.classList), sizes, listings, overflows,
            used: (bottom - top) / (720 * scale)};
  });
}"""

SLIDE_NUMBER = """() => Array.from(document.querySelectorAll('.reveal .slide-number'))
  .filter(el => el.textContent.trim()).map(el => parseFloat(getComputedStyle(el).fontSize))"""


def gpu_deck(folder: Path) -> Path:
    """The deck built from the GPU results, in a copy of the talk: the demos the archive lacks run here at
    full size, and the session's builds of the talk need not wait for them."""
    out = folder / "dist"
    result = run_build(copy_of_talk(folder / "talk"), "--out", str(out), "--results", str(GPU_ARCHIVE), timeout=1800)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module", params=["gpu-archive", "cpu-small"])   # the first needs no talk_build
def measured(request, tmp_path_factory):
    """(deck folder, per-slide measurements, slide number sizes, the page) of one build: a deck built from
    the GPU results, or the session's build of the talk at its small size."""
    if request.param == "gpu-archive":
        if not GPU_ARCHIVE.exists():
            pytest.skip(f"no GPU results archive at {GPU_ARCHIVE}")
        out = gpu_deck(tmp_path_factory.mktemp(request.param))
    else:
        out = request.getfixturevalue("talk_build").out
    with chromium() as context:
        page, errors, _ = open_deck(context, (out / "index.html").as_uri())
        assert errors == []
        yield out, page.evaluate(MEASURE), page.evaluate(SLIDE_NUMBER), page


def awaits_new_gpu_results(request) -> None:
    """The GPU deck's results were made on an H200 by older demo code (every entry is reported stale):
    its figures were drawn at the earlier 17 pt and some of its tables have the earlier shape, so on that
    deck this test is expected to fail until the archive is made again on a GPU (README: "GPU"). Strict:
    once new results pass, the mark must go."""
    if request.node.callspec.params["measured"] == "gpu-archive":
        request.applymarker(pytest.mark.xfail(strict=True, reason="results/h200-cuda.tar predates the "
                                              "current figure style and demo tables; regenerate it on a GPU"))


def test_every_kind_of_text_is_large_enough_for_the_back_row(measured, request):
    awaits_new_gpu_results(request)
    _, slides, _, _ = measured
    small = [(s["number"], s["title"], kind, round(size["px"], 1), size["text"]) for s in slides
             for kind, size in s["sizes"].items() if size["px"] < SMALLEST_PX[kind]]
    assert not small, "\n".join(map(str, small))
    kinds = {kind for s in slides for kind in s["sizes"]}
    assert {"body", "code", "output", "table", "caption", "figure"} <= kinds   # the talk has all of them


def test_no_listing_is_longer_than_12_lines(measured):
    _, slides, _, _ = measured
    long = [(s["number"], s["title"], lines) for s in slides for lines in s["listings"] if lines > LONGEST_LISTING]
    assert long == []
    assert any(s["listings"] for s in slides)


def test_a_cut_listing_opens_the_whole_function_over_the_slide(measured):
    _, slides, _, page = measured
    opened = page.evaluate("""() => Array.from(document.querySelectorAll('details.full-listing')).map(details => {
      Reveal.slide(Array.from(document.querySelectorAll('.reveal .slides > section')).indexOf(details.closest('section')));
      const shown = details.closest('figure').querySelector(':scope > .highlight pre').textContent;
      details.open = true;
      const pre = details.querySelector('pre'), slide = details.closest('section').getBoundingClientRect();
      const box = details.getBoundingClientRect(), full = pre.textContent;
      const result = {whole: full.includes(shown.split('\\n')[0].trim()) && full.length > shown.length,
                      covers: box.width >= slide.width - 2 && box.height >= slide.height - 2,
                      cut: pre.scrollHeight - pre.clientHeight > 2 || pre.scrollWidth - pre.clientWidth > 2,
                      px: parseFloat(getComputedStyle(pre).fontSize)};
      details.open = false;
      return result;
    })""")
    assert opened, "no slide cuts a listing"
    assert all(o["whole"] and o["covers"] and not o["cut"] for o in opened), opened


def test_no_element_leaves_its_slide_or_is_cut_off(measured, request):
    awaits_new_gpu_results(request)
    _, slides, _, _ = measured
    assert [(s["number"], s["title"], s["overflows"][:3]) for s in slides if s["overflows"]] == []


def test_no_content_slide_is_half_empty(measured):
    _, slides, _, _ = measured
    sparse = [(s["number"], s["title"], round(s["used"], 2)) for s in slides
              if s["used"] < 0.5 and not (SPARSE_ROLES | {"backup"}) & set(s["classes"])]
    assert sparse == []


def test_title_section_and_closing_slides_are_one_family(measured):
    _, slides, _, _ = measured
    roles = {role for s in slides for role in SPARSE_ROLES & set(s["classes"])}
    assert {"title", "section", "closing"} <= roles
    assert all("center" in s["classes"] for s in slides if SPARSE_ROLES & set(s["classes"]))


def test_measured_results_carry_a_badge_and_no_slide_carries_a_footer(measured):
    _, _, _, page = measured
    found = page.evaluate("""() => ({
      footer: document.querySelectorAll('.deck-footer').length,
      timings: Array.from(document.querySelectorAll('.reveal .slides > section'))
        .filter(slide => slide.querySelector('table.demo-timings'))
        .map(slide => slide.querySelector('.measured-on')?.textContent || ''),
      provenance: document.querySelector('section#provenance table.provenance-table tbody tr') !== null})""")
    assert found["footer"] == 0 and found["provenance"]
    assert found["timings"] and all(badge.startswith("measured on ") for badge in found["timings"])


def test_the_slide_number_is_readable(measured):
    _, _, numbers, _ = measured
    assert numbers and min(numbers) >= SMALLEST_SLIDE_NUMBER_PX
