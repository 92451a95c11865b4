"""Pictures drawn from the real thing (demos/pictures.py): the recorded graph, the layers that ran."""
import pytest
import torch
import torch.nn.functional as F

from demos import pictures
from demos._figures import PYTORCH
from demos._main import demos_in

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's


def test_both_are_demos():
    assert {"autograd_graph", "random_depths"} <= set(demos_in(pictures))


def test_the_graph_is_the_one_autograd_recorded():
    torch.manual_seed(0)
    result = pictures.autograd_graph("cpu", "small")
    nodes = result.values["nodes"]
    assert nodes[0] == "BinaryCrossEntropyWithLogitsBackward0" == result.values["loss_node"]
    assert sorted(n for n in nodes if n.endswith(".grad")) == ["W1.grad", "W2.grad", "b1.grad", "b2.grad"]
    assert {"TanhBackward0", "MmBackward0"} <= set(nodes) and result.values["n_operations"] == len(nodes) - 4
    assert len(result.figures) == 1 and "TanhBackward0" in result.figures[0].alt


def test_the_walk_follows_next_functions_to_every_leaf():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    loss = F.relu(a * b).sum()
    nodes, edges = pictures.recorded_graph(loss, {id(a): "a", id(b): "b"})
    assert nodes == ["SumBackward0", "ReluBackward0", "MulBackward0", "a.grad", "b.grad"]
    assert sorted(edges) == [(0, 1), (1, 2), (2, 3), (2, 4)]
    assert pictures.depths_from_loss(len(nodes), edges) == [0, 1, 2, 3, 3]


def test_each_call_runs_the_first_layers_up_to_its_depth():
    torch.manual_seed(0)
    result = pictures.random_depths("cpu", "small", calls=12)
    depths = result.values["depths"]
    assert result.values["prefix_only"] is True and len(depths) == 12
    assert len(set(depths)) > 1 and all(1 <= d <= result.values["max_depth"] for d in depths)


def test_pytorch_is_drawn_in_its_colour():
    torch.manual_seed(0)
    figure = pictures.random_depths("cpu", "small").figures[0].figure
    edges = {tuple(round(c, 3) for c in patch.get_edgecolor()[:3]) for patch in figure.axes[0].patches}
    red, green, blue = (int(PYTORCH[i:i + 2], 16) / 255 for i in (1, 3, 5))
    assert (round(red, 3), round(green, 3), round(blue, 3)) in edges
