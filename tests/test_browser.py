"""The built decks in a real browser: they load offline, count right, carry notes, and run nothing injected."""
import shutil

import pytest

from browser import FIGURE_SIZES, open_deck
from deck.browser import chromium
from conftest import run_build

pytestmark = pytest.mark.browser

HOSTILE_DEMO = '''
from deck.result import Result, Table


def hostile(device, size="full"):
    print("<script>window.__injected = 'print'</script>")
    return Result(values={"name": "<img src=x onerror=window.__injected='value'>"},
                  tables=[Table(["cell"], [["<script>window.__injected='table'</script>"]])])
'''


@pytest.fixture(scope="module")
def browser():
    with chromium() as context:
        yield context


def test_fixture_deck_loads_offline_with_notes_figures_and_speaker_view(project, browser, tmp_path):
    assert run_build(project).returncode == 0
    page, errors, requests = open_deck(browser, (project / "dist" / "index.html").as_uri())
    assert errors == []
    assert page.evaluate("Reveal.getTotalSlides()") == 7
    notes = page.eval_on_selector_all(".slides > section", "s => s.map(x => x.querySelector('aside.notes').textContent.trim())")
    assert all(notes) and len(notes) == 7
    figures = page.evaluate(FIGURE_SIZES)
    assert [f["tag"] for f in figures] == ["svg"] and figures[0]["width"] > 50 and figures[0]["height"] > 50
    assert figures[0]["label"] == "a line rising from 0 to 4"
    page.evaluate("Reveal.slide(1)")
    with page.expect_popup() as popup:
        page.keyboard.press("s")                                  # reveal's speaker view
    speaker = popup.value
    speaker.wait_for_selector(".speaker-controls-notes", timeout=10000)
    speaker.wait_for_function("document.querySelector('.speaker-controls-notes').textContent.includes('came from torch')")
    assert speaker.is_visible(".speaker-controls-pacing") or speaker.is_visible(".pacing")  # budgets give pacing
    page.screenshot(path=str(tmp_path / "slide.png"))
    assert (tmp_path / "slide.png").stat().st_size > 5000
    assert all(url.startswith(("file://", "data:", "about:")) for url in requests), requests


def test_single_file_deck_works_when_copied_alone(project, browser, tmp_path):
    assert run_build(project, "--single-file", "--out", str(tmp_path / "built")).returncode == 0
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(tmp_path / "built" / "index.html", alone / "talk.html")
    page, errors, requests = open_deck(browser, (alone / "talk.html").as_uri())
    assert errors == [] and page.evaluate("Reveal.getTotalSlides()") == 7
    assert [url for url in requests if not url.startswith(("data:", "about:"))] == [(alone / "talk.html").as_uri()]


def test_text_from_a_demo_never_runs_as_script(project, browser):
    (project / "demos" / "hostile.py").write_text(HOSTILE_DEMO)
    (project / "slides" / "30-hostile.md").write_text(
        '<!-- .slide: timing=10 -->\n## Hostile\n\n{{ result("hostile.hostile").name }}\n\n'
        '{{ output("hostile.hostile") }}\n{{ table("hostile.hostile") }}\n\nNote:\n{{ result("hostile.hostile").name }}\n')
    build = run_build(project)
    assert build.returncode == 0, build.stderr
    page, errors, _ = open_deck(browser, (project / "dist" / "index.html").as_uri())
    page.evaluate("Reveal.slide(6)")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__injected === undefined")
    text = page.inner_text(".slides > section:nth-child(7)")
    assert "<script>window.__injected = 'print'</script>" in text and "<img src=x" in text
