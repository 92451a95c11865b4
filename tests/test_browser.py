"""The built decks in a real browser: they load offline, count right, carry notes, and run nothing injected."""
import re
import shutil

import pytest

from browser import FIGURE_SIZES, RECORD_VIOLATIONS, open_deck
from deck.browser import PRINT_LAYOUT, chromium
from conftest import build_here

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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


def console_errors(context) -> list[str]:
    """Console errors from every page of the context from now on: popups and frames included."""
    errors: list[str] = []
    context.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def speaker_view(page, slide: int, notes: str):
    """reveal's speaker view (the S key) on a slide, once it shows that slide's notes."""
    page.evaluate(f"Reveal.slide({slide})")
    with page.expect_popup() as popup:
        page.keyboard.press("s")
    speaker = popup.value
    speaker.wait_for_function("notes => (document.querySelector('.speaker-controls-notes') || {})"
                              ".textContent?.includes(notes)", arg=notes, timeout=30000)
    # its frames show this slide and the next one: the deck, loaded again, under the same policy
    speaker.wait_for_function("() => document.querySelectorAll('iframe').length === 2", timeout=30000)
    for frame in speaker.query_selector_all("iframe"):
        frame.content_frame().wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30000)
    return speaker


def test_fixture_deck_loads_offline_with_notes_figures_and_speaker_view(built_project, browser, tmp_path):
    project = built_project
    page, errors, requests = open_deck(browser, (project / "dist" / "index.html").as_uri())
    assert errors == []
    assert page.evaluate("document.querySelectorAll('.reveal .slides > section').length") == 7                 # 6 of the talk + where-numbers-come-from
    assert page.evaluate("Reveal.getTotalSlides()") == 6                   # a backup slide is not counted
    notes = page.eval_on_selector_all(".slides > section", "s => s.map(x => x.querySelector('aside.notes').textContent.trim())")
    assert all(notes) and len(notes) == 7
    figures = page.evaluate(FIGURE_SIZES)
    assert [f["tag"] for f in figures] == ["img"] and figures[0]["drawn"] and figures[0]["width"] > 50 and figures[0]["height"] > 50
    assert figures[0]["label"] == "a line rising from 0 to 4"
    errors_anywhere = console_errors(browser)
    speaker = speaker_view(page, 1, "came from torch")
    assert speaker.is_visible(".speaker-controls-pacing") or speaker.is_visible(".pacing")  # budgets give pacing
    assert errors_anywhere == [] and errors == []                  # the policy blocks nothing of the deck's own
    speaker.close()
    page.screenshot(path=str(tmp_path / "slide.png"))
    assert (tmp_path / "slide.png").stat().st_size > 5000
    assert all(url.startswith(("file://", "data:", "about:")) for url in requests), requests


def test_single_file_deck_works_when_copied_alone(built_project, browser, tmp_path):
    project = built_project
    assert build_here(project, "--single-file", "--out", str(tmp_path / "built")).returncode == 0
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(tmp_path / "built" / "index.html", alone / "talk.html")
    page, errors, requests = open_deck(browser, (alone / "talk.html").as_uri())
    assert errors == [] and page.evaluate("document.querySelectorAll('.reveal .slides > section').length") == 7
    assert [url for url in requests if not url.startswith(("data:", "about:"))] == [(alone / "talk.html").as_uri()]
    errors_anywhere = console_errors(browser)
    speaker_view(page, 1, "came from torch").close()         # the speaker view too, with inline scripts only
    assert errors_anywhere == [] and errors == []


PAYLOADS = ["<img src=x onerror=window.__injected='html'>", "![a](x){: onerror=window.__injected='attr' }",
            "[x](javascript:window.__injected='link')", "<javascript:window.__injected='autolink'>",
            "[x][r]\n\n[r]: javascript:window.__injected='reference'", "</p><script>window.__injected='close'</script>",
            "{: onclick=window.__injected='attr_list' }", "<svg onload=window.__injected='svg'>",
            '"><img src=x onerror=window.__injected=\'quote\'>']


def test_no_value_from_a_demo_becomes_markup_anywhere(built_project, browser, tmp_path):
    """Every payload, in prose, heading, list, table cell, notes, alt text, caption and printed output,
    shows as its literal text in index.html, notes.html and the single-file deck: no element, attribute,
    link or script comes from it."""
    project = built_project
    (project / "demos" / "hostile.py").write_text(f"""
import matplotlib.pyplot as plt
from deck.result import Figure, Result, Table
PAYLOADS = {PAYLOADS!r}


def hostile(device, size="full"):
    for payload in PAYLOADS:
        print(payload)
    figure, axes = plt.subplots()
    axes.plot([0, 1])
    return Result(values={{f"p{{i}}": p for i, p in enumerate(PAYLOADS)}},
                  tables=[Table(PAYLOADS[:2], [PAYLOADS[2:4]], caption=PAYLOADS[4])],
                  figures=[Figure(figure, alt=PAYLOADS[8])])
""")
    slides = []
    for i in range(len(PAYLOADS)):
        value = f'{{{{ result("hostile.hostile").p{i} }}}}'
        slides.append(f"<!-- .slide: timing=10 -->\n## Heading {value}\n\nProse {value}\n\n- item {value}\n\n"
                      f"| a |\n|---|\n| {value} |\n\nNote:\nNotes {value}\n")
    slides.append('<!-- .slide: timing=10 -->\n## Blocks\n\n{{ demo("hostile.hostile") }}\n')
    (project / "slides" / "30-hostile.md").write_text("\n---\n".join(slides))
    single = tmp_path / "single"
    for arguments in ((), ("--single-file", "--out", str(single))):
        build = build_here(project, *arguments)
        assert build.returncode == 0, build.stderr
    dialogs = []
    browser.on("page", lambda page: page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())))
    for page_file in (project / "dist" / "index.html", project / "dist" / "notes.html", single / "index.html"):
        page = browser.new_page()
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        made = page.evaluate("""() => ({
            injected: window.__injected === undefined ? null : window.__injected,
            handlers: document.querySelectorAll('[onerror],[onload],[onclick]').length,
            links: document.querySelectorAll('a[href^="javascript" i]').length,
            images: Array.from(document.images).filter(i => !i.src.startsWith('data:')).length,
            scripts: Array.from(document.querySelectorAll('section script, article script, aside script')).length,
            svgs: document.querySelectorAll('section svg, article svg').length,
            text: document.body.textContent})""")
        assert (made["injected"], made["handlers"], made["links"], made["images"], made["scripts"], made["svgs"]) == \
            (None, 0, 0, 0, 0, 0), page_file
        for payload in PAYLOADS:
            assert payload.splitlines()[0] in made["text"], (page_file, payload)
        page.close()
    assert dialogs == []


def test_fragments_and_the_print_view_work_under_the_policy(built_project, browser):
    project = built_project
    (project / "slides" / "30-steps.md").write_text(
        "<!-- .slide: timing=10 -->\n## Steps\n\nOne\n{: .fragment }\n\nTwo\n{: .fragment }\n\nNote:\nStep by step.\n")
    assert build_here(project).returncode == 0
    index = (project / "dist" / "index.html").as_uri()
    page, errors, _ = open_deck(browser, index + "#/slide-7")
    assert page.eval_on_selector_all(".present .fragment", "f => f.length") == 2
    page.evaluate("Reveal.nextFragment()")
    assert page.eval_on_selector_all(".present .fragment.visible", "f => f.map(x => x.textContent)") == ["One"]
    page.close()
    page, print_errors, _ = open_deck(browser, index + "?print-pdf")
    page.wait_for_function(f"() => ({PRINT_LAYOUT})().done", timeout=20000)
    assert page.evaluate(PRINT_LAYOUT)["pages"] == 8
    assert page.eval_on_selector_all(".fragment:not(.visible)", "f => f.length") == 0   # printed fully shown
    assert errors == [] and print_errors == []


INJECTED = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned2 = 1</script>'


@pytest.mark.parametrize("built, page_name", [((), "index.html"), ((), "notes.html"), (("--single-file",), "index.html")],
                         ids=["deck", "notes", "single-file"])
def test_markup_injected_into_a_built_page_cannot_run_script(built_project, browser, tmp_path, built, page_name):
    project = built_project
    assert build_here(project, *built, "--out", str(tmp_path / "out")).returncode == 0
    path = tmp_path / "out" / page_name
    html = path.read_text()
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'" and "unsafe" not in directives.get("script-src", "")
    assert not re.search(r"https?:|\*|unsafe-eval", policy)
    path.write_text(re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + INJECTED, html, count=1))
    page = browser.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(path.as_uri())
    # the inline <script> and the onerror handler (of an image that img-src forbids anyway)
    page.wait_for_function("() => ['script-src-elem inline', 'script-src-attr inline']"
                           ".every(v => window.__violations.includes(v))", timeout=30000)
    assert page.evaluate("[window.__pwned, window.__pwned2]") == [None, None]
    if page_name == "index.html":
        page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=20000)   # the deck's own scripts still run
    page.close()
