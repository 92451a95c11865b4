"""Claims checked at build time, and timings compared by their spread (deck/claims.py)."""
from pathlib import Path

import pytest

from deck.catalog import load_catalog
from deck.claims import break_even, faster, speedup
from deck.errors import BuildError
from deck.render import SlideRenderer, make_environment, page_environment
from deck.result import DemoCall, Provenance, Result, Timing
from deck.slides import parse_file

REPO = Path(__file__).resolve().parent.parent


def result(values, timings=None, device_name="cuda (NVIDIA H200)") -> Result:
    return Result(values=values, timings=timings or {},
                  provenance=Provenance(device="cuda", device_name=device_name, torch="2.13.0", python="3.11",
                                        seconds=0.1, ran_at="2026-11-25T10:00:00+00:00"))


def timing(median_s, iqr_s):
    return Timing(median_s=median_s, iqr_s=iqr_s, repeats=7, device="cpu")


LOSS = result({"loss_start": 0.702, "loss_end": 1.04, "other": 3},
              {"eager": timing(1.0e-3, 0.1e-3), "compiled": timing(0.5e-3, 0.05e-3)})


def render(project: Path, text: str, results=None, keep_going=False):
    path = project / "slides" / "50-x.md"
    path.write_text(text)
    slide = parse_file(path, "slides/50-x.md")[0]
    renderer = SlideRenderer(make_environment(REPO / "templates"), page_environment(REPO / "templates", project / ".cache"), load_catalog(project / "demos", project),
                             results or {DemoCall("arith.tensor_sum"): LOSS},
                             {"title": "T", "presenter": "P"}, keep_going=keep_going)
    return renderer.render_slide(slide)


FALSE_CLAIM = ('<!-- .slide: timing=30 -->\n## Loss\n\nText before.\n\n'
               '{% claim result("arith.tensor_sum").loss_end < result("arith.tensor_sum").loss_start, '
               '"the loss falls" %}\n')


def test_a_false_claim_stops_the_build_with_file_line_device_and_values(project):
    with pytest.raises(BuildError) as caught:
        render(project, FALSE_CLAIM)
    assert str(caught.value) == ('slides/50-x.md:6: claim "the loss falls" is false on cuda (NVIDIA H200): '
                                 'loss_end=1.04, loss_start=0.702')


def test_a_claim_reads_results_set_to_a_name(project):
    with pytest.raises(BuildError, match=r'^slides/50-x.md:5: claim "it fell" is false on cuda \(NVIDIA H200\): '
                                         r'loss_end=1.04, eager=1 ms ± 50 µs$'):
        render(project, '<!-- .slide: timing=30 -->\n## Loss\n{% set r = result("arith.tensor_sum") %}\n\n'
                        '{% claim r.loss_end < 1 and r.timings.eager.median_s > 0, "it fell" %}\n')


def test_a_true_claim_renders_nothing_and_is_logged(project):
    slide = render(project, '<!-- .slide: timing=30 -->\n## Loss\n\nA{% claim result("arith.tensor_sum").other == 3, '
                            '"three" %}B\n\nNote:\nSay it.\n{% claim faster(result("arith.tensor_sum").timings.compiled,'
                            ' result("arith.tensor_sum").timings.eager), "compiling is faster" %}\n')
    assert "<p>AB</p>" in slide.html
    assert [(c["statement"], c["holds"], c["line"]) for c in slide.claims] == [
        ("three", True, 4), ("compiling is faster", True, 8)]
    assert slide.claims[1]["detail"] == "compiled=500 µs ± 25 µs, eager=1 ms ± 50 µs"


def test_keep_going_shows_the_false_claim_on_an_error_card(project):
    slide = render(project, FALSE_CLAIM, keep_going=True)
    assert 'class="error-card"' in slide.html
    assert 'claim &#34;the loss falls&#34; is false on cuda (NVIDIA H200)' in slide.html
    assert "slides/50-x.md:6" in slide.error
    assert slide.claims == [{"statement": "the loss falls", "holds": False,
                             "detail": "loss_end=1.04, loss_start=0.702", "line": 6}]


def test_a_claim_on_a_failed_demo_is_skipped_not_a_crash(project):
    failed = {DemoCall("arith.tensor_sum"): Result(error="Traceback: boom")}
    slide = render(project, FALSE_CLAIM.replace("Text before.", "{{ result('arith.tensor_sum').loss_end }}"),
                   results=failed, keep_going=True)
    assert "demo failed" in slide.html
    assert slide.claims[0]["holds"] is None


def test_claims_on_two_devices_name_both(project):
    results = {DemoCall("arith.tensor_sum"): LOSS,
               DemoCall("arith.other"): result({"x": 1}, device_name="cpu (test, 2 cores)")}
    with pytest.raises(BuildError, match=r"false on cuda \(NVIDIA H200\) and cpu \(test, 2 cores\): other=3, x=1"):
        render(project, '<!-- .slide: timing=30 -->\n## X\n\n'
                        '{% claim result("arith.tensor_sum").other < result("arith.other").x, "less" %}\n',
                        results=results)


def t(median, iqr):
    return Timing(median_s=median, iqr_s=iqr, repeats=7, device="cpu")


def test_faster_needs_spreads_that_do_not_overlap():
    assert faster(t(1.0, 0.2), t(2.0, 0.2))
    assert not faster(t(2.0, 0.2), t(1.0, 0.2))
    assert not faster(t(1.0, 0.4), t(1.3, 0.4))  # 0.8–1.2 against 1.1–1.5: overlap
    assert not faster("⚠ demo failed", t(1.0, 0.1))


def test_speedup_prints_the_precision_the_spreads_support():
    assert str(speedup(t(1.0, 0.1), t(1.75, 0.1))) == "1.6–1.9×"
    assert str(speedup(t(1.0, 0.01), t(2.0, 0.01))) == "about 2×"
    assert str(speedup(t(1.0, 0.4), t(1.3, 0.4))) == "no measurable difference"
    assert str(speedup(t(1.0, 0.001), t(118.0, 0.001))) == "about 120×"
    assert not speedup(t(1.0, 0.4), t(1.3, 0.4)).measurable


def test_break_even_is_a_range_or_never():
    assert str(break_even(10.0, t(1e-3, 0.1e-3), t(2e-3, 0.1e-3))) == "9,100 to 11,000 calls"
    assert str(break_even(t(10.0, 0.0), t(1e-3, 1e-6), t(2e-3, 1e-6))) == "about 10,000 calls"
    # a saving the size of the spread: no number at all, not "118,577 calls"
    assert str(break_even(17.8, t(1.40e-3, 0.14e-3), t(1.50e-3, 0.14e-3))) == \
        "never, as far as this measurement can tell"
    assert not break_even(17.8, t(1.40e-3, 0.14e-3), t(1.50e-3, 0.14e-3)).pays


def test_helpers_are_there_in_slides(project):
    slide = render(project, '<!-- .slide: timing=30 -->\n## X\n\n'
                            '{{ speedup(result("arith.tensor_sum").timings.compiled, '
                            'result("arith.tensor_sum").timings.eager) }} and '
                            '{{ break_even(2.0, result("arith.tensor_sum").timings.compiled, '
                            'result("arith.tensor_sum").timings.eager) }}\n')
    assert "<p>1.8–2.2× and 3,500 to 4,700 calls</p>" in slide.html


def single_run(median_s):
    return Timing(median_s=median_s, iqr_s=0.0, repeats=1, device="cpu")


def test_a_single_run_has_no_known_spread_so_no_comparison_vouches_for_it():
    cold, warm = single_run(2.0), timing(1e-3, 1e-4)
    assert not faster(warm, cold) and not faster(cold, warm)
    assert not speedup(warm, cold).measurable
    assert str(cold) == "2 s (a single run, cpu)"
    assert not break_even(1.0, warm, cold).pays
    assert break_even(cold, timing(1e-3, 1e-4), timing(2e-3, 1e-4)).pays  # a one-off cost is its median
