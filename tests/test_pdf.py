"""python build.py pdf: one page per slide with real (vector) text, and the printable notes."""
import pypdf
import pytest

from conftest import build_here
from deck.browser import write_pdfs
from deck.errors import BuildError

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_pdf_has_one_page_per_slide_and_the_notes(built_project):
    project = built_project
    build = build_here(project, "pdf")
    assert build.returncode == 0, build.stderr
    deck = pypdf.PdfReader(project / "dist" / "deck.pdf")
    index = (project / "dist" / "index.html").read_text()
    assert len(deck.pages) == index.count("<section ") == 7
    second = deck.pages[1].extract_text()
    assert "Tensors add up" in second and "The sum is 45 on cpu." in second        # text, not pixels
    assert "def tensor_sum(device" in second                                      # the highlighted code
    notes = "\n".join(page.extract_text() for page in pypdf.PdfReader(project / "dist" / "notes.pdf").pages)
    assert "Say hello." in notes and "The total, 45, came from torch." in notes
    assert not list((project / "dist").glob(".*.tmp"))


def test_pdf_fails_clearly_when_the_print_layout_never_finishes(built_project):
    project = built_project
    (project / "dist" / "assets" / "deck.js").write_text("")          # reveal never starts: no print layout
    with pytest.raises(BuildError, match=r"print layout .* did not finish within 3 s \(0 pages laid out for 7 slides\)"):
        write_pdfs(project / "dist", timeout_s=3)
    assert not list((project / "dist").glob("*.pdf")) and not list((project / "dist").glob(".*.tmp"))
