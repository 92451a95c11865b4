"""Look at a built deck as the audience and the presenter will: one PNG per slide, and the notes.

    python benchmarks/screenshots.py DIST_DIR OUT_DIR            # every slide, all its fragments shown
    python benchmarks/screenshots.py DIST_DIR OUT_DIR --slides 3 12

Writes OUT_DIR/slide-NN.png (1280x720, as a projector shows the deck), OUT_DIR/notes-NN.png (the
printed notes, one A4 page each, as `python build.py pdf` lays them out) and OUT_DIR/index.txt
(slide number, title, file). Runs in headless Chromium (Debian's package, as `python build.py pdf`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deck.browser import chromium  # noqa: E402

# Every slide with all of its fragments shown: how it looks at the end of its build-up.
SHOW_SLIDE = """(index) => {
  Reveal.slide(index);
  while (Reveal.nextFragment()) {}
  const slide = Reveal.getCurrentSlide();
  return [(slide.querySelector('h1,h2') || {}).textContent || '', slide.dataset.source || ''];
}"""
A4_AT_96_DPI = (794, 1123)          # CSS px of an A4 page
NOTES_MARGIN_PX = 45                # the 12 mm margins of notes.pdf


def deck_shots(context, dist: Path, out: Path, wanted: set[int]) -> list[str]:
    page = context.new_page()
    page.goto((dist / "index.html").as_uri())
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=20000)
    page.add_style_tag(content="*, *::before, *::after { transition: none !important; animation: none !important; }")
    count = page.evaluate("() => document.querySelectorAll('.reveal .slides > section').length")
    lines = []
    for index in range(count):
        if wanted and index + 1 not in wanted:
            continue
        title, source = page.evaluate(SHOW_SLIDE, index)
        page.wait_for_timeout(150)
        page.screenshot(path=str(out / f"slide-{index + 1:02d}.png"))
        lines.append(f"{index + 1:3d}  {' '.join(title.split())[:70]:<70}  {source}")
    return lines


def notes_shots(context, dist: Path, out: Path) -> int:
    """The notes page in print layout, cut into A4 pages (their content width, at 96 dpi)."""
    width, height = A4_AT_96_DPI
    page = context.new_page()
    page.set_viewport_size({"width": width - 2 * NOTES_MARGIN_PX, "height": height - 2 * NOTES_MARGIN_PX})
    page.emulate_media(media="print")
    page.goto((dist / "notes.html").as_uri())
    total = page.evaluate("() => document.documentElement.scrollHeight")
    step = height - 2 * NOTES_MARGIN_PX
    pages = 0
    for top in range(0, total, step):
        pages += 1
        page.screenshot(path=str(out / f"notes-{pages:02d}.png"), full_page=True,
                        clip={"x": 0, "y": top, "width": width - 2 * NOTES_MARGIN_PX,
                              "height": min(step, total - top)})
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path, help="a built deck: the folder holding index.html and notes.html")
    parser.add_argument("out", type=Path, help="where the PNGs go (created)")
    parser.add_argument("--slides", type=int, nargs="*", default=[], help="only these slide numbers (1 = first)")
    options = parser.parse_args()
    if not (options.dist / "index.html").is_file():
        parser.error(f"{options.dist / 'index.html'} does not exist: build the deck first (python build.py)")
    options.out.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        lines = deck_shots(context, options.dist.resolve(), options.out, set(options.slides))
        pages = 0 if options.slides else notes_shots(context, options.dist.resolve(), options.out)
    (options.out / "index.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} slides and {pages} notes pages to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
