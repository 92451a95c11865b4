"""The printed and on-screen notes are part of the product: they read cleanly, on paper and on screen.

The header and the title slide are rendered in-process, with and without a presenter and a date.
The real talk's notes.html is then laid out for print in Chromium (an A4 page's width) and its
notes.pdf is read with pypdf: every key figure fits its column and covers no text, nothing runs
off the page, and the notes are printed at 12 pt or more.
"""
from html.parser import HTMLParser
from pathlib import Path

import pypdf
import pytest

from browser import open_deck
from conftest import REPO, run_build
from deck.browser import chromium
from deck.catalog import load_catalog
from deck.render import SlideRenderer, make_environment, page_environment
from deck.slides import parse_file

TALKS = [{"title": "T", "subtitle": "S", "presenter": presenter, "date": date, "target_minutes": 45}
         for presenter in ("", "Ada Lovelace") for date in ("", "2026-11-25")]
SMALLEST_PRINTED_PT = 12
A4_CONTENT_PX = 703          # 210 mm less notes.pdf's 12 mm margins, at 96 px per inch
FIGURE_FONT = "DejaVuSans"   # matplotlib's: the text inside the key figures, drawn at thumbnail size


class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def text_of(html: str) -> str:
    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def reads_cleanly(line: str) -> bool:
    """No separator at either end, none doubled."""
    return not line.startswith("·") and not line.endswith("·") and "· ·" not in line


@pytest.mark.parametrize("talk", TALKS, ids=lambda t: f"presenter={bool(t['presenter'])},date={bool(t['date'])}")
def test_the_notes_header_reads_cleanly(talk, tmp_path):
    pages = page_environment(REPO / "templates", tmp_path / "cache")
    html = pages.get_template("notes.html.j2").render(talk=talk, slides=[], total_seconds=600, stylesheet="")
    facts = text_of(html.split('class="notes-facts">')[1].split("</p>")[0])
    assert reads_cleanly(facts), facts
    assert facts.startswith(talk["presenter"] or talk["date"] or "0 slides"), facts


@pytest.mark.parametrize("talk", TALKS, ids=lambda t: f"presenter={bool(t['presenter'])},date={bool(t['date'])}")
def test_the_title_slide_reads_cleanly(talk, tmp_path):
    slide = parse_file(REPO / "slides" / "00-title.md", "slides/00-title.md")[0]
    renderer = SlideRenderer(make_environment(REPO / "templates"), page_environment(REPO / "templates", tmp_path),
                             load_catalog(REPO / "demos", REPO), {}, talk)
    lines = [text_of(line) for line in renderer.render_slide(slide).html.splitlines() if text_of(line)]
    assert all(reads_cleanly(line) for line in lines), lines
    assert ("Ada Lovelace" in " ".join(lines)) == bool(talk["presenter"])


# --- the real talk's notes, printed ------------------------------------------------------------

PRINTED_LAYOUT = """() => {
  const overlaps = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const problems = [];
  document.querySelectorAll('.note-block').forEach(block => {
    const title = block.querySelector('h2').textContent.trim();
    const column = block.querySelector('.note-slide').getBoundingClientRect();
    const texts = Array.from(block.querySelectorAll('h2, .note-meta, .note-text')).map(el => el.getBoundingClientRect());
    block.querySelectorAll('.note-figure img').forEach(img => {
      const box = img.getBoundingClientRect();
      if (!img.complete || !img.naturalWidth || box.width < 50) problems.push([title, 'not drawn']);
      if (box.left < column.left - 1 || box.right > column.right + 1) problems.push([title, 'wider than its column']);
      if (texts.some(text => overlaps(box, text))) problems.push([title, 'covers text']);
    });
  });
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.getClientRects().length) continue;
    const px = parseFloat(getComputedStyle(el).fontSize);
    if (px < 16) small.push([px, node.textContent.trim().slice(0, 40)]);
  }
  const root = document.documentElement;
  return {problems, small, figures: document.querySelectorAll('.note-figure img').length,
          wide: root.scrollWidth - root.clientWidth};
}"""


@pytest.fixture(scope="module")
def printed_notes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("notes") / "dist"
    built = run_build(REPO, "pdf", "--size", "small", "--out", str(out), timeout=1800)
    assert built.returncode == 0, built.stderr
    return out


@pytest.mark.browser
@pytest.mark.slow
def test_printed_notes_fit_the_page_and_no_figure_covers_text(printed_notes):
    with chromium(viewport=(A4_CONTENT_PX, 1000)) as context:
        page = context.new_page()
        page.emulate_media(media="print")
        page.goto((printed_notes / "notes.html").as_uri())
        page.wait_for_function("() => Array.from(document.images).every(image => image.complete)")
        found = page.evaluate(PRINTED_LAYOUT)
    assert found["figures"] > 5                  # the talk's figures are there, as thumbnails beside their notes
    assert found["problems"] == [] and found["wide"] <= 0
    assert found["small"] == []                  # 16 px = 12 pt


@pytest.mark.browser
@pytest.mark.slow
def test_notes_pdf_prints_the_notes_at_12_pt_or_more(printed_notes):
    sizes = {}

    def visit(text, cm, tm, font, size):
        if text.strip() and font and FIGURE_FONT not in font.get("/BaseFont", ""):
            scale = (tm[2] ** 2 + tm[3] ** 2) ** 0.5 * (cm[2] ** 2 + cm[3] ** 2) ** 0.5
            sizes.setdefault(round(size * scale, 1), text.strip()[:40])

    notes = pypdf.PdfReader(printed_notes / "notes.pdf")
    printed = " ".join(" ".join(page.extract_text(visitor_text=visit) for page in notes.pages).split())
    assert printed.startswith("Speaker notes:") and "Backup: where and when each demo ran." in printed  # the last slide
    assert sizes and min(sizes) >= SMALLEST_PRINTED_PT, sorted(sizes.items())[:5]


@pytest.mark.browser
@pytest.mark.slow
def test_the_deck_and_the_notes_open_without_errors(printed_notes):
    with chromium() as context:
        _, errors, _ = open_deck(context, (printed_notes / "index.html").as_uri())
        assert errors == []
        page = context.new_page()
        page.goto((printed_notes / "notes.html").as_uri())
        assert page.evaluate("() => document.querySelectorAll('.note-block').length") == \
            (printed_notes / "index.html").read_text().count("<section ")
