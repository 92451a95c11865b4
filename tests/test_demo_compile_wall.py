"""Part 4's twist (demos/compile_wall.py): torch.compile breaks the graph at .item() and recompiles
per depth, torch.export refuses the model, and the torch.cond version exports as one graph."""
import pytest
import torch

from demos import compile_wall
from demos._main import demos_in

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's


@pytest.fixture(scope="module")
def result(talk_build):
    """The demo as the talk's build ran it (it compiles once per depth: run once)."""
    return talk_build.result("compile_wall.random_depth_compiled")


def test_is_the_only_demo():
    assert set(demos_in(compile_wall)) == {"random_depth_compiled"}


@pytest.mark.slow
def test_compile_breaks_the_graph_and_compiles_one_per_depth(result):
    values = result.values
    assert values["graph_breaks"] >= 1
    assert values["compiled_graphs"] >= values["compiled_answers"] > 1
    assert values["compiled_answers"] == values["eager_answers"]


@pytest.mark.slow
def test_export_refuses_the_item_model_and_takes_the_cond_one(result):
    values = result.values
    assert values["export_error"]
    assert values["cond_ops"] == values["max_depth"]
    assert values["cond_answers"] > 1
    assert result.timings["compile_first"].repeats == 1
    assert result.timings["cond_call"].repeats >= 5
    assert result.tables[0].rows[0][3].endswith("one run")  # a first call is timed once


def test_cond_model_runs_exactly_the_drawn_number_of_layers():
    """Independently of the demo: each depth gives the eager prefix of that many layers."""
    torch.manual_seed(0)
    model = compile_wall.CondDepthMLP(width=8, max_depth=3)
    x = torch.randn(4, 2)
    by_depth = []
    for depth in range(1, 4):
        h = torch.relu(model.inp(x))
        for layer in model.hidden[:depth]:
            h = h + torch.relu(layer(h))
        by_depth.append(model.out(h))
    with torch.no_grad():
        for _ in range(10):
            out = model(x)
            assert sum(torch.allclose(out, expected) for expected in by_depth) == 1


def test_answers_counts_different_outputs():
    same, other = torch.ones(2, 2), torch.zeros(2, 2)
    assert compile_wall.answers([same, same.clone(), other]) == 2
