"""The talk's sources: every slide paced and with notes, a budget that leaves time for questions,
notes that can be spoken in their slot, code that fits a slide, and the presenter set in one place."""
import re
import tomllib
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


QUESTION_MINUTES = 3            # kept free of any slide's budget
PROVENANCE_SECONDS = 10         # the generated slide after the last file
URL = re.compile(r"https?://|www\.")


def settings() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["deck"]


def test_every_slide_has_a_budget_and_notes_and_the_talk_leaves_time_for_questions():
    slides, _, found = talk()
    assert found.errors == []
    for slide in slides:
        assert slide.timing, slide.location
        assert len(slide.notes.split()) >= 15, slide.location
    target = settings()["target_minutes"] * 60
    total = sum(slide.timing for slide in slides) + PROVENANCE_SECONDS
    assert target - 10 * 60 <= total <= target - QUESTION_MINUTES * 60


def test_notes_read_no_url_aloud():
    """(Whether the notes fit their slot is checked on the built deck: tests/test_talk.py.)"""
    slides, _, _ = talk()
    assert [s.location for s in slides if URL.search(s.notes)] == []


def test_no_slide_promises_an_hour():
    slides, _, _ = talk()
    assert [s.location for s in slides if re.search(r"\ban hour\b", s.body + s.notes, re.I)] == []


def test_the_presenter_is_set_in_pyproject_only():
    presenter = settings()["presenter"]
    assert presenter != "Your Name"
    for path in (REPO / "slides").glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert "Your Name" not in text, path.name
        if presenter:
            assert presenter not in text, f"{path.name} types the presenter's name"
    title = (REPO / "slides" / "00-title.md").read_text(encoding="utf-8")
    assert "{% if talk.presenter %}" in title and "{{ talk.presenter }}" in title


def test_the_ending_is_the_last_main_slide_and_backup_slides_follow_it():
    slides, _, _ = talk()
    classes = [s.attributes.get("class", "").split() for s in slides]
    main = [i for i, c in enumerate(classes) if "backup" not in c]
    assert "closing" in classes[main[-1]]
    assert main == list(range(len(main)))            # nothing of the main talk after a backup slide
    assert all("backup" in c for c in classes[len(main):]) and len(main) < len(slides)


def test_code_shown_on_a_slide_fits_on_it():
    _, catalog, found = talk()
    for reference in found.references:
        if reference.call is None:
            source = catalog.shown_code(reference.target)[0]
            lines = source.rstrip().splitlines()
            assert len(lines) <= 20, f"{reference.file}:{reference.line}: {reference.target} is {len(lines)} lines"
            assert max(map(len, lines)) <= 90, f"{reference.target} has a line too wide for a slide"


def test_rehearsal_paces_slides_with_code_slower_than_those_without(capsys):
    """130 words a minute of notes where a listing is on the slide, 160 elsewhere."""
    import build
    from deck.render import RenderedDeck, RenderedSlide

    def slide(number: int, html: str) -> RenderedSlide:  # 140 words for a minute
        return RenderedSlide(number=number, title="t", timing=60, location=f"slides/x.md:{number}",
                             html=html, notes_html="", notes_text="word " * 140)
    listing = '<div class="highlight"><pre><span>x = 1</span></pre></div>'
    deck = RenderedDeck(slides=[slide(1, "<p>prose only</p>"), slide(2, listing)], )
    build.print_times(deck, {"target_minutes": 45})
    flagged = [line for line in capsys.readouterr().out.splitlines() if "too long to say" in line]
    assert len(flagged) == 1 and "slide 2 " in flagged[0] and "130 words a minute" in flagged[0]
