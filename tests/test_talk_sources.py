"""The talk's sources: every slide paced and with notes, a 40–50 minute budget, code that fits a slide."""
from pathlib import Path

from deck.catalog import load_catalog
from deck.references import scan
from deck.render import make_environment
from deck.slides import load_slides

REPO = Path(__file__).resolve().parent.parent
OUTLINE_PARTS = ["title", "welcome", "grabber", "agenda", "objectives", "ethos", "practical", "history",
                 "basics", "models", "crazy", "production", "questions", "summary", "objectives", "final"]


def talk():
    slides = load_slides(REPO / "slides", REPO)
    catalog = load_catalog(REPO / "demos", REPO)
    return slides, catalog, scan(slides, catalog, make_environment(REPO / "templates"))


def test_the_files_follow_the_outline_in_order():
    names = [path.stem.split("-", 1)[1] for path in sorted((REPO / "slides").glob("*.md"))]
    assert [name for name in names if name in OUTLINE_PARTS] == OUTLINE_PARTS


def test_every_slide_has_a_budget_and_notes_and_the_talk_fits_40_to_50_minutes():
    slides, _, found = talk()
    assert found.errors == []
    for slide in slides:
        assert slide.timing, slide.location
        assert len(slide.notes.split()) >= 15, slide.location
    assert 40 * 60 <= sum(slide.timing for slide in slides) <= 50 * 60


def test_code_shown_on_a_slide_fits_on_it():
    _, catalog, found = talk()
    for reference in found.references:
        if reference.call is None:
            source = catalog.shown_code(reference.target)[0]
            lines = source.rstrip().splitlines()
            assert len(lines) <= 19, f"{reference.file}:{reference.line}: {reference.target} is {len(lines)} lines"
            assert max(map(len, lines)) <= 90, f"{reference.target} has a line too wide for a slide"
