"""Legible from the back row: every slide of the real talk, measured in Chromium at 1280x720.

Both the CPU build (`--size small`) and the deck built from the GPU results in `results/`: code,
printed output, tables, captions and figure text render at 20 px or more (rendered CSS px: computed
size times reveal's scale), and no element runs past the slide's box or is clipped inside its own.
"""
from pathlib import Path

import pytest

from browser import open_deck
from conftest import REPO, run_build
from deck.browser import chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GPU_ARCHIVE = REPO / "results" / "h200-cuda.tar"   # the talk's results from an NVIDIA H200
SMALLEST_TEXT_PX = 20
SMALLEST_FOOTER_PX = 16

# Per slide: the smallest rendered text of each kind, and every element that leaves the slide's box
# or clips its own content (a <pre> or table cell cut off at its edge is overflow too).
MEASURE = """() => {
  const scale = document.querySelector('.reveal .slides').getBoundingClientRect().width / 1280;
  const kinds = {code: 'pre code, .highlight pre', output: 'pre.demo-output', table: 'table th, table td',
                 caption: 'figcaption, table caption'};
  const slides = Array.from(document.querySelectorAll('.reveal .slides > section'));
  return slides.map((slide, index) => {
    Reveal.slide(index);
    const sizes = {}, overflows = [];
    const box = slide.getBoundingClientRect();
    for (const [kind, selector] of Object.entries(kinds)) {
      slide.querySelectorAll(selector).forEach(el => {
        if (!el.textContent.trim()) return;
        const px = parseFloat(getComputedStyle(el).fontSize) * scale;
        sizes[kind] = Math.min(sizes[kind] ?? Infinity, px);
      });
    }
    slide.querySelectorAll('figure.demo-figure img').forEach(img => {
      // The SVG's own text sizes (matplotlib writes them in px of its viewBox), scaled as the <img> is drawn.
      const svg = new DOMParser().parseFromString(atob(img.src.split(',')[1]), 'image/svg+xml').documentElement;
      const perUnit = img.getBoundingClientRect().width / svg.viewBox.baseVal.width;
      svg.querySelectorAll('text').forEach(text => {
        if (!text.textContent.trim()) return;
        const style = text.getAttribute('style') || '';
        const size = parseFloat((style.match(/font(?:-size)?:[^;]*?([0-9.]+)px/) || [])[1]);
        if (size) sizes.figure = Math.min(sizes.figure ?? Infinity, size * perUnit);
      });
    });
    slide.querySelectorAll('*').forEach(el => {
      if (el.closest('aside.notes') || el.closest('svg') && el.tagName.toLowerCase() !== 'svg') return;
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) return;
      const out = Math.max(box.left - r.left, r.right - box.right, box.top - r.top, r.bottom - box.bottom);
      const clipped = ['hidden', 'clip'].includes(getComputedStyle(el).overflowX) || ['hidden', 'clip'].includes(getComputedStyle(el).overflowY)
        ? Math.max(el.scrollWidth - el.clientWidth, el.scrollHeight - el.clientHeight) : 0;
      if (out > 2 || clipped > 2)
        overflows.push({tag: el.tagName.toLowerCase(), cls: String(el.className.baseVal ?? el.className), out, clipped,
                        text: el.textContent.trim().slice(0, 60)});
    });
    const title = (slide.querySelector('h1,h2') || {}).textContent || '';
    return {number: index + 1, title, sizes, overflows};
  });
}"""

FOOTER = """() => ['.deck-footer', '.slide-number'].map(s => document.querySelector(s))
  .filter(el => el && el.textContent.trim()).map(el => parseFloat(getComputedStyle(el).fontSize))"""


def build(out: Path, *args: str) -> Path:
    result = run_build(REPO, "--out", str(out), *args, timeout=1800)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module", params=["cpu-small", "gpu-archive"])
def measured(request, tmp_path_factory):
    """(deck folder, per-slide measurements, footer sizes) of one build: the session's build of the talk
    at its small size, or a deck built from the GPU results."""
    if request.param == "gpu-archive":
        if not GPU_ARCHIVE.exists():
            pytest.skip(f"no GPU results archive at {GPU_ARCHIVE}")
        out = build(tmp_path_factory.mktemp(request.param) / "dist", "--results", str(GPU_ARCHIVE))
    else:
        out = request.getfixturevalue("talk_build").out
    with chromium() as context:
        page, errors, _ = open_deck(context, (out / "index.html").as_uri())
        assert errors == []
        yield out, page.evaluate(MEASURE), page.evaluate(FOOTER)


def test_every_kind_of_text_is_at_least_20_px(measured):
    _, slides, _ = measured
    small = [(s["number"], s["title"], kind, round(px, 1)) for s in slides
             for kind, px in s["sizes"].items() if px < SMALLEST_TEXT_PX]
    assert not small, '\n'.join(map(str, small))
    kinds = {kind for s in slides for kind in s["sizes"]}
    assert {"code", "output", "table", "caption", "figure"} <= kinds   # the talk has all of them


def test_no_element_leaves_its_slide_or_is_cut_off(measured):
    _, slides, _ = measured
    assert [(s["number"], s["title"], s["overflows"][:3]) for s in slides if s["overflows"]] == []


def test_the_footer_and_slide_number_are_readable(measured):
    _, _, footer = measured
    assert footer and min(footer) >= SMALLEST_FOOTER_PX
