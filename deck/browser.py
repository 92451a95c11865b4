"""Headless Chromium (Debian's package) driven by Playwright: for PDF export and the browser tests."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from deck.errors import BuildError

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    found = os.environ.get("DECK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BuildError("Chromium is not installed: `make setup-test` installs Debian's chromium "
                         "(or set DECK_CHROMIUM to a Chromium/Chrome binary)")
    return found


@contextlib.contextmanager
def chromium(viewport=(1280, 720)):
    """A fresh headless Chromium with its own throw-away profile; yields a Playwright context."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield context
        finally:
            context.close()


# Playwright polls a condition given as an expression with eval(), which the deck's policy forbids;
# conditions are therefore written as functions ("() => ...").
# reveal's ?print-pdf view lays the deck out again after it is ready, over several animation frames:
# printing earlier gives one page. The last step adds all the .pdf-pages (one per slide) and fires
# "pdf-ready" in one go, so once every slide has its page the layout is done.
PRINT_LAYOUT = """() => {
  const pages = document.querySelectorAll('.reveal .slides .pdf-page').length;
  const slides = document.querySelectorAll('.reveal .slides section:not(.stack)').length;
  const images = Array.from(document.images).every(image => image.complete);
  return {pages, slides, done: slides > 0 && pages === slides && images};
}"""


def write_pdfs(out_dir: Path, timeout_s: float = 60) -> list[Path]:
    """dist/deck.pdf (one page per slide, via reveal's ?print-pdf) and dist/notes.pdf."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    written = []
    with chromium() as context:
        page = context.new_page()
        page.goto((out_dir / "index.html").as_uri() + "?print-pdf")
        try:
            page.wait_for_function(f"() => ({PRINT_LAYOUT})().done", timeout=timeout_s * 1000)
            page.evaluate("document.fonts.ready.then(() => true)")
        except PlaywrightTimeout:
            state = page.evaluate(PRINT_LAYOUT)
            raise BuildError(f"reveal's print layout of {out_dir / 'index.html'} did not finish within "
                             f"{timeout_s:g} s ({state['pages']} pages laid out for {state['slides']} slides); "
                             "no PDF was written") from None
        written.append(save_pdf(page, out_dir / "deck.pdf", prefer_css_page_size=True))
        page.goto((out_dir / "notes.html").as_uri())
        written.append(save_pdf(page, out_dir / "notes.pdf", format="A4",
                                margin={"top": "12mm", "bottom": "12mm", "left": "12mm", "right": "12mm"}))
    return written


def save_pdf(page, path: Path, **options) -> Path:
    temporary = path.with_name(f".{path.name}.tmp")
    page.pdf(path=str(temporary), print_background=True, **options)
    os.replace(temporary, path)
    return path
