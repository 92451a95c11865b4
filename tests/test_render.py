"""Rendering a slide: Markdown + Jinja + Pygments, values in prose, escaping, and errors with locations."""
import base64
import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from deck.catalog import load_catalog
from deck.errors import BuildError
from deck.render import SlideRenderer, make_environment, page_environment
from deck.result import DemoCall, Figure, Output, Provenance, Result, Table, Timing
from deck.slides import parse_file

REPO = Path(__file__).resolve().parent.parent
SVG = '<svg role="img" aria-label="a line" width="10" height="10"><path d="M0 0L1 1"/></svg>'


def result(**changes) -> Result:
    base = Result(values={"total": 45, "tiny": 3.2e-7, "label": "<script>alert(1)</script>"},
                  tables=[Table(["n", "time"], [["1", "<b>2</b>"]], "sizes")],
                  figures=[Figure(alt="a line", svg=SVG)],
                  timings={"step": Timing(median_s=0.0012, iqr_s=0.0002, repeats=7, device="cpu")},
                  output=Output("printed <img src=x onerror=alert(1)>\n", 40),
                  provenance=Provenance(device="cpu", device_name="cpu (test)", torch="2.13.0", python="3.11",
                                        seconds=0.5, ran_at="2026-11-25T10:00:00+00:00"))
    return dataclasses.replace(base, **changes)


def render(project: Path, text: str, results=None, keep_going=False):
    path = project / "slides" / "50-x.md"
    path.write_text(text)
    slide = parse_file(path, "slides/50-x.md")[0]
    renderer = SlideRenderer(make_environment(REPO / "templates"), page_environment(REPO / "templates", project / ".cache"),
                             load_catalog(project / "demos", project),
                             results or {DemoCall("arith.tensor_sum"): result()},
                             {"title": "T", "presenter": "P"}, keep_going=keep_going)
    return renderer.render_slide(slide)


def test_markdown_values_and_notes(project):
    slide = render(project, """<!-- .slide: timing=30 class="x" -->
## Sum of *ten*

- the total is {{ result("arith.tensor_sum").total }}
{: .fragment }
- tiny: {{ result("arith.tensor_sum").tiny | sci }}, step {{ result("arith.tensor_sum").timings.step }}

Note:
Say the total: {{ result("arith.tensor_sum").total }}.
""")
    assert slide.title == "Sum of ten" and slide.timing == 30 and slide.classes == "x"
    assert '<li class="fragment">the total is 45</li>' in slide.html
    assert "tiny: 3.2e-07" in slide.html
    assert "step 1.2 ms ± 100 µs (median of 7, cpu)" in slide.html
    assert slide.notes_text == "Say the total: 45."


def test_a_demo_block_has_code_output_table_figure_and_timings(project):
    slide = render(project, '<!-- .slide: timing=30 -->\n## Block\n\n{{ demo("arith.tensor_sum") }}\n')
    html = slide.html
    assert '<span class="nf">tensor_sum</span>' in html and '<span class="k">return</span>' in html  # Pygments
    assert "demos/arith.py:7 · tensor_sum" in html
    encoded = base64.b64encode(SVG.encode()).decode()
    assert f'<img src="data:image/svg+xml;base64,{encoded}" alt="a line">' in html and slide.key_figure
    assert "<caption>sizes</caption>" in html and "<td>1</td>" in html
    assert "measured on cpu (test) · torch 2.13.0 · 2026-11-25" in html
    assert "wzxhzdk" not in html and "\x02" not in html and "<p><div" not in html     # the stash put it all back


def test_text_from_demos_is_escaped_never_markup(project):
    slide = render(project, '<!-- .slide: timing=30 -->\n## X\n\n{{ result("arith.tensor_sum").label }}\n\n'
                            '{{ output("arith.tensor_sum") }}\n{{ table("arith.tensor_sum") }}\n')
    assert "<script>" not in slide.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in slide.html
    assert "<img" not in slide.html and "&lt;img src=x onerror=alert(1)&gt;" in slide.html
    assert "<b>2</b>" not in slide.html


def test_slide_text_is_not_python(project):
    with pytest.raises(BuildError) as caught:
        render(project, "<!-- .slide: timing=30 -->\n## X\n\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    assert caught.value.location == "slides/50-x.md:4"


def test_an_unknown_value_names_the_line_and_the_closest_values(project):
    with pytest.raises(BuildError) as caught:
        render(project, '<!-- .slide: timing=30 -->\n## X\n\nline 4\n\nThe {{ result("arith.tensor_sum").totl }}\n')
    assert caught.value.location == "slides/50-x.md:6"
    assert "demo arith.tensor_sum has no value 'totl' (did you mean: total?)" in caught.value.message


def test_a_template_error_at_render_time_names_the_line(project):
    with pytest.raises(BuildError) as caught:
        render(project, '<!-- .slide: timing=30 -->\n## X\n\n{{ undefined_name }}\n')
    assert caught.value.location == "slides/50-x.md:4"
    assert "undefined_name" in caught.value.message


def test_keep_going_turns_errors_into_a_visible_card(project):
    failed = {DemoCall("arith.tensor_sum"): Result(error="slides/50-x.md:4: demo arith.tensor_sum raised")}
    slide = render(project, '<!-- .slide: timing=30 -->\n## X\n\n{{ demo("arith.tensor_sum") }} '
                            'and {{ result("arith.tensor_sum").total }}\n', results=failed, keep_going=True)
    assert 'class="error-card"' in slide.html and "demo arith.tensor_sum raised" in slide.html
    assert "⚠ demo failed" in slide.html
    broken = render(project, '<!-- .slide: timing=30 -->\n## X\n\n{{ nope }}\n', keep_going=True)
    assert 'class="error-card"' in broken.html and "slides/50-x.md:4" in broken.html


PAYLOADS = ["<img src=x onerror=alert(1)>", "![a](x){: onerror=alert(2) }", "[x](javascript:alert(3))",
            "<javascript:alert(4)>", "[x][r]\n\n[r]: javascript:alert(5)", "</p><script>alert(6)</script>",
            "**bold** _em_ `code`", "{: .fragment onclick=alert(7) }", "&lt;b&gt;", "<http://example.com>"]


def markup_of(html: str) -> list:
    """The elements and attributes of an HTML fragment, in order: what a value must never add to."""
    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, sorted(attrs)))
    Collect().feed(html)
    return found


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_value_is_literal_text_wherever_a_slide_puts_it(project, payload):
    """Prose, heading, list, table cell, notes: the value shows as itself, and no markup comes from it."""
    value = '{{ result("arith.tensor_sum").total }}'
    text = f"""<!-- .slide: timing=30 -->
## Heading {value}

Prose {value} and **strong {value}**

- item {value}
{{: .fragment }}

| a | b |
|---|---|
| {value} | x |

Note:
Notes {value}
"""
    slide = render(project, text, results={DemoCall("arith.tensor_sum"): result(values={"total": payload})})
    plain = render(project, text, results={DemoCall("arith.tensor_sum"): result(values={"total": "plain"})})
    assert markup_of(slide.html) == markup_of(plain.html)
    assert markup_of(slide.notes_html) == markup_of(plain.notes_html)
    escaped = str(escape(payload))
    assert slide.html.count(escaped) == 5 and escaped in slide.notes_html
    assert payload.splitlines()[0] in slide.notes_text


def test_a_value_cannot_forge_a_block_of_the_deck(project):
    forged = "@@DECKBLOCK0@@ \x02wzxhzdk:0\x03 deck0v0e"
    slide = render(project, '<!-- .slide: timing=30 -->\n## X\n\n{{ code("arith.tensor_sum") }}\n\n'
                            'v: {{ result("arith.tensor_sum").total }}\n',
                   results={DemoCall("arith.tensor_sum"): result(values={"total": forged})})
    assert slide.html.count("demo-code") == 1 and "@@DECKBLOCK0@@" in slide.html and "deck0v0e" in slide.html


def test_a_difference_of_zero_reads_as_words(project):
    results = {DemoCall("arith.tensor_sum"): result(values={"total": 0.0, "tiny": 3.2e-7})}
    slide = render(project, '<!-- .slide: timing=30 -->\n## X\n\n{{ result("arith.tensor_sum").total | sci }} and '
                            '{{ result("arith.tensor_sum").tiny | sci }}\n', results=results)
    assert "<p>exactly 0 and 3.2e-07</p>" in slide.html


def test_a_cut_listing_shows_its_lines_and_keeps_the_whole_one_click_away(project):
    html = render(project, '## Cut\n\n{{ code("arith.tensor_sum", lines="2:3") }}\n').html
    shown, _, full = html.partition('<details class="full-listing">')
    assert "demos/arith.py:7 · tensor_sum · lines 2–3" in shown
    assert "arange" in shown and "summing" in shown and "return" not in shown and "def" not in shown
    assert "all 4 lines" in full and '<span class="k">def</span>' in full and "return" in full
    assert shown.count("<pre") == 1 and '<pre><span></span><span class="n">x</span>' in shown   # dedented


def test_a_cut_in_parts_marks_each_gap(project):
    html = render(project, '## Cut\n\n{{ code("arith.tensor_sum", lines="1,3") }}\n').html
    shown = html.partition('<details')[0]
    assert "tensor_sum · lines 1, 3" in shown and "arange" not in shown and "summing" in shown
    code = re.sub(r"<[^>]+>", "", shown.partition("<pre")[2])
    assert '\n    ...\n    print("summing"' in code.replace("&quot;", '"')           # the gap, at the next line's indent


@pytest.mark.parametrize("lines, message", [
    ("x", r'lines must be "FIRST:LAST"'), ("3:2", "the listing has lines 1 to 4"), ("0:2", "lines 1 to 4"),
    ("1:9", "lines 1 to 4"), ("1:2,3", "with a gap between")])
def test_a_bad_cut_names_the_slide_line_and_what_is_wrong(project, lines, message):
    with pytest.raises(BuildError, match=r"slides/50-x\.md:3: .*" + message):
        render(project, f'## Cut\n\n{{{{ code("arith.tensor_sum", lines="{lines}") }}}}\n')


def test_a_cut_of_more_than_12_lines_is_refused(project):
    (project / "demos" / "long.py").write_text("def long(device, size):\n" + "    x = 1\n" * 20)
    with pytest.raises(BuildError, match="shows 13 lines; a slide shows at most 12"):
        render(project, '## Cut\n\n{{ code("long.long", lines="1:13") }}\n')


def test_measured_results_carry_where_they_were_measured_and_others_do_not(project):
    measured = {DemoCall("arith.tensor_sum"): result(measured={"speedup": 2.0})}
    badge = "measured on cpu (test) · torch 2.13.0 · 2026-11-25"
    assert badge in render(project, '## T\n\n{{ table("arith.tensor_sum") }}\n', measured).html
    assert badge in render(project, '## F\n\n{{ figure("arith.tensor_sum") }}\n', measured).html
    assert badge in render(project, '## T\n\n{{ timings("arith.tensor_sum") }}\n').html
    assert badge in render(project, '## S\n\nstep {{ result("arith.tensor_sum").timings.step }}\n\n'
                                    '{{ measured_on("arith.tensor_sum") }}\n').html
    plain = {DemoCall("arith.tensor_sum"): result(timings={})}
    assert "measured on" not in render(project, '## F\n\n{{ figure("arith.tensor_sum") }}\n', plain).html
    assert "measured on" not in render(project, '## T\n\n{{ table("arith.tensor_sum") }}\n', plain).html
