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


def write_pdfs(out_dir: Path) -> list[Path]:
    """dist/deck.pdf (one page per slide, via reveal's ?print-pdf) and dist/notes.pdf."""
    written = []
    with chromium() as context:
        page = context.new_page()
        page.goto((out_dir / "index.html").as_uri() + "?print-pdf")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=60000)
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
