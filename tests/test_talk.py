"""The real talk, built at its small size, in a real browser: what the audience and the presenter get.

The build (every demo of the talk, compiling included: a few minutes on a 2-core machine the first
time) is the session's one build of the talk (conftest's talk_build), whose cache is the talk's own.
"""
from pathlib import Path

import pytest

from browser import FIGURE_SIZES, OVERFLOWING_SLIDES, open_deck
from conftest import REPO, run_build
from deck.browser import chromium
from deck.slides import load_slides

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def talk(talk_build) -> Path:
    return talk_build.out


@pytest.fixture(scope="module")
def deck(talk):
    with chromium() as context:
        yield open_deck(context, (talk / "index.html").as_uri())


def test_every_slide_of_the_sources_is_in_the_deck_with_notes(deck):
    page, errors, _ = deck
    sources = load_slides(REPO / "slides", REPO)
    assert page.evaluate("document.querySelectorAll('.reveal .slides > section').length") == len(sources) + 1      # + where-numbers-come-from
    backups = [s for s in sources if "backup" in s.attributes.get("class", "").split()]
    assert page.evaluate("Reveal.getTotalSlides()") == len(sources) - len(backups)   # the count ends at the ending
    notes = page.eval_on_selector_all(".slides > section",
                                      "s => s.map(x => x.querySelector('aside.notes').textContent.trim())")
    assert all(len(note) > 40 for note in notes)
    assert errors == []


def test_figures_are_svg_images_drawn_with_size_and_alt_text(deck):
    page, _, _ = deck
    figures = page.evaluate(FIGURE_SIZES)
    assert len(figures) >= 8
    for figure in figures:
        assert figure["tag"] == "img" and figure["source"] == "data:image/svg+xml;base64,", figure
        assert figure["drawn"] and figure["width"] > 100 and figure["height"] > 60, figure
        assert len(figure["label"]) > 10, figure


def test_no_slide_overflows_at_1280x720(deck):
    page, _, _ = deck
    assert page.evaluate(OVERFLOWING_SLIDES) == []


def test_no_request_leaves_the_machine(deck):
    _, _, requests = deck
    assert requests and all(url.startswith(("file://", "data:", "about:")) for url in requests), requests


def test_no_serious_accessibility_violations(deck):
    page, _, _ = deck
    page.evaluate(AXE.read_text())         # not a <script> tag: the deck's policy blocks injected scripts
    violations = page.evaluate("""async () => {
      const found = [];
      for (const [index, slide] of Array.from(document.querySelectorAll('.reveal .slides > section')).entries()) {
        Reveal.slide(index);
        const result = await axe.run(slide, {resultTypes: ['violations']});
        result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
          .forEach(v => found.push({slide: index + 1, id: v.id, nodes: v.nodes.slice(0, 2).map(n => n.html.slice(0, 120))}));
      }
      return found;
    }""")
    assert violations == []


def test_a_demo_slide_screenshot(deck, talk):
    page, _, _ = deck
    index = page.evaluate("Array.from(document.querySelectorAll('.reveal .slides > section'))"
                          ".findIndex(s => s.querySelector('figure.demo-figure img'))")
    assert index >= 0
    page.evaluate(f"Reveal.slide({index})")
    page.wait_for_function(f"() => Reveal.getIndices().h === {index} && "
                           "Reveal.getCurrentSlide().querySelector('figure.demo-figure img').complete")
    shot = talk / "demo-slide.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20000


def test_the_talk_ends_on_its_closing_with_backup_slides_after_it(deck):
    page, _, _ = deck
    sections = page.eval_on_selector_all(".slides > section", "s => s.map(x => ({id: x.id, cls: x.className}))")
    main = [s for s in sections if "backup" not in s["cls"] and s["id"] != "provenance"]
    assert "closing" in main[-1]["cls"]
    assert sections.index(main[-1]) < sections.index(next(s for s in sections if s["id"] == "provenance"))
    title = page.inner_text(".slides > section:first-child")
    assert "Your Name" not in title and "**" not in title


def test_rehearsal_flags_no_slide_whose_notes_are_too_long_to_say(talk, tmp_path):
    """notes --times reads each slide's rendered notes against its budget (160 words a minute, 130 with code)."""
    rehearsal = run_build(REPO, "notes", "--times", "--size", "small", "--out", str(tmp_path / "dist"), timeout=1800)
    assert rehearsal.returncode == 0, rehearsal.stderr
    assert "total:" in rehearsal.stdout and "too long to say" not in rehearsal.stdout, rehearsal.stdout
