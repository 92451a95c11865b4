"""Part #4: random depth and gradient masks (demos/crazy.py)."""
import contextlib

import pytest
import torch

from demos import crazy
from demos._main import demos_in

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's


@pytest.fixture(scope="module")
def result():
    return crazy.random_depth_masked("cpu", "small")


def test_is_a_demo():
    assert "random_depth_masked" in demos_in(crazy)


def test_masked_weights_exactly_unchanged(result):
    assert result.values["masked_weights_unchanged"] is True
    assert result.values["max_masked_change"] == 0.0
    assert result.values["n_masked"] > 0


def test_unmasked_weights_changed(result):
    assert result.values["max_unmasked_change"] > 0.0


def test_more_than_one_depth_seen(result):
    depths = result.values["depths_seen"]
    assert len(depths) > 1
    assert depths == sorted(set(depths))
    assert 1 <= min(depths) and max(depths) <= result.values["max_depth"]


def test_it_learns(result):
    values = result.values
    assert values["final_loss"] < 0.7 * values["initial_loss"]
    assert values["accuracy"] > values["initial_accuracy"] + 0.2


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_it_learns_whatever_the_seed_and_the_threads(threads, monkeypatch):
    """What the slide claims must not rest on one lucky seed (or thread count)."""
    monkeypatch.setattr(crazy, "one_thread", contextlib.nullcontext)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for seed in range(5):
            values = crazy.random_depth_masked("cpu", "small", seed=seed).values
            # the claims on slides/70-crazy.md
            assert values["final_loss"] < 0.8 * values["initial_loss"], seed
            assert values["accuracy"] > values["initial_accuracy"] + 0.1, seed
    finally:
        torch.set_num_threads(before)


def test_eval_averages_the_prediction_of_every_depth():
    torch.manual_seed(0)
    model = crazy.RandomDepthMLP(width=8, max_depth=3).eval()
    x = torch.randn(5, 2)
    h, chances = torch.relu(model.inp(x)), []
    for layer in model.hidden:
        h = h + torch.relu(layer(h))
        chances.append(model.out(h).softmax(-1))
    assert torch.allclose(model(x).exp(), sum(chances) / 3)


def test_values_are_plain(result):
    for name, value in result.values.items():
        items = value if isinstance(value, list) else [value]
        assert all(isinstance(v, (bool, int, float, str)) for v in items), name


def test_figures_have_alt_text(result):
    assert len(result.figures) == 2
    for figure in result.figures:
        assert len(figure.alt.split()) >= 10
        assert figure.figure.axes


def test_mask_built_here_keeps_weights_exactly():
    """Independently of the demo: mask, train, compare bit for bit."""
    torch.manual_seed(1)
    x, y = crazy.make_spirals(200)
    model = crazy.RandomDepthMLP(width=16, max_depth=4)
    masks = crazy.freeze_lower_triangles(model)
    before = {p: p.detach().clone() for p in model.parameters()}
    losses, depths = crazy.train(model, x, y, steps=100)
    assert len(set(depths)) > 1
    assert losses[-1] < losses[0]
    for p, mask in masks.items():
        frozen, free = mask == 0, mask == 1
        assert frozen.any()
        assert torch.equal(p[frozen], before[p][frozen])
        assert not torch.equal(p[free], before[p][free])
    # Parameters without a mask trained as usual.
    assert not torch.equal(model.out.weight, before[model.out.weight])


def test_weight_decay_would_break_the_mask():
    """Why the demo uses plain SGD: decay moves weights whose gradient is 0."""
    torch.manual_seed(2)
    x, y = crazy.make_spirals(100)
    model = crazy.RandomDepthMLP(width=8, max_depth=2)
    masks = crazy.freeze_lower_triangles(model)
    before = {p: p.detach().clone() for p in masks}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    moved = [not torch.equal(p[m == 0], before[p][m == 0])
             for p, m in masks.items() if p.grad is not None]
    assert any(moved)
