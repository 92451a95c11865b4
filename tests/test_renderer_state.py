"""Rendering one slide owns what it collects: two renderers, or two slides, never share a claim, a value
or a figure."""
import dataclasses
from pathlib import Path

import pytest

from deck.catalog import load_catalog
from deck.errors import BuildError
from deck.render import SlideRenderer, make_environment, page_environment
from deck.result import DemoCall, Figure
from deck.slides import parse_file
from test_render import SVG, result

REPO = Path(__file__).resolve().parent.parent
SLIDES = '''<!-- .slide: timing=30 -->
## First

The total is {{ result("arith.tensor_sum").total }}.

{% claim result("arith.tensor_sum").total > 0, "the total is positive" %}

{{ figure("arith.tensor_sum", 0) }}
---
<!-- .slide: timing=30 -->
## Second

Just {{ talk.title }}.
'''


def renderer_for(project: Path, environment, total: int, figure_alt: str, title: str) -> SlideRenderer:
    shown = result(values={"total": total}, figures=[Figure(alt=figure_alt, svg=SVG)])
    return SlideRenderer(environment, page_environment(REPO / "templates", project / ".cache"),
                         load_catalog(project / "demos", project), {DemoCall("arith.tensor_sum"): shown},
                         {"title": title, "presenter": "P"})


def test_two_renderers_on_one_environment_keep_their_own_values_claims_and_figures(project):
    path = project / "slides" / "50-x.md"
    path.write_text(SLIDES)
    first, second = parse_file(path, "slides/50-x.md")
    environment = make_environment(REPO / "templates")           # the one the scan reads, shared
    globals_before, finalize_before = dict(environment.globals), environment.finalize
    cpu = renderer_for(project, environment, 45, "cpu line", "CPU talk")
    gpu = renderer_for(project, environment, 7, "gpu line", "GPU talk")
    a1, b1, a2, b2 = (cpu.render_slide(first), gpu.render_slide(first), cpu.render_slide(second),
                      gpu.render_slide(second))
    assert "The total is 45." in a1.html and "The total is 7." in b1.html
    assert 'alt="cpu line"' in a1.key_figure and 'alt="gpu line"' in b1.key_figure
    assert [c["detail"] for c in a1.claims] == ["total=45"] and [c["detail"] for c in b1.claims] == ["total=7"]
    assert "Just CPU talk." in a2.html and "Just GPU talk." in b2.html
    assert a2.claims == [] and b2.claims == [] and a2.key_figure == "" and b2.key_figure == ""
    assert environment.globals == globals_before and environment.finalize is finalize_before


def test_a_slide_rendered_again_collects_afresh(project):
    path = project / "slides" / "50-x.md"
    path.write_text(SLIDES)
    first, _ = parse_file(path, "slides/50-x.md")
    renderer = renderer_for(project, make_environment(REPO / "templates"), 45, "line", "T")
    once, twice = renderer.render_slide(first), renderer.render_slide(first)
    assert dataclasses.asdict(once) == dataclasses.asdict(twice)
    assert len(twice.claims) == 1 and twice.html.count("<img") == 1


def test_templates_and_macros_a_slide_uses_keep_values_inert(project):
    (project / "templates").mkdir()
    (project / "templates" / "bits.j2").write_text("{% macro value(x) %}{{ x }}{% endmacro %}")
    path = project / "slides" / "50-x.md"
    path.write_text('## X\n\n{% import "bits.j2" as bits %}{{ bits.value(3) }}\n')
    slide = parse_file(path, "slides/50-x.md")[0]
    renderer = SlideRenderer(make_environment(project / "templates"),
                             page_environment(REPO / "templates", project / ".cache"),
                             load_catalog(project / "demos", project), {}, {"title": "T"})
    with pytest.raises(BuildError, match=r'^slides/50-x.md:3: a template a slide imports must share its context'):
        renderer.render_slide(slide)
    path.write_text('## X\n\n{% import "bits.j2" as bits with context %}{{ bits.value("<b>") }}\n')
    assert "<p>&lt;b&gt;</p>" in renderer.render_slide(parse_file(path, "slides/50-x.md")[0]).html
    path.write_text('## X\n\n{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice("*a*") }}\n')
    assert "<p>*a**a*</p>" in renderer.render_slide(parse_file(path, "slides/50-x.md")[0]).html
