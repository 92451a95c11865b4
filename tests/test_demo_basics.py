"""The claims of slides/50-basics.md, checked on the small size on the CPU."""
import numpy as np
import pytest
import torch

from demos import basics
from deck.result import Result
from demos._figures import HEIGHT, WIDTH
from demos._main import demos_in

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's


@pytest.fixture(scope="module")
def numpy_vs_torch() -> Result:
    return basics.numpy_vs_torch("cpu", "small")


@pytest.fixture(scope="module")
def speed() -> Result:
    return basics.speed_by_size("cpu", "small")


@pytest.fixture(scope="module")
def gradients() -> Result:
    return basics.gradients_are_not_hidden("cpu", "small")


def test_the_module_has_the_three_demos():
    assert set(demos_in(basics)) == {
        "numpy_vs_torch", "speed_by_size", "gradients_are_not_hidden"}


def test_numpy_and_autograd_gradients_agree(numpy_vs_torch):
    # float64 on both sides: the difference is rounding only.
    assert numpy_vs_torch.values["max_grad_diff"] <= 1e-6
    assert numpy_vs_torch.values["dtype"] == "float64"


def test_numpy_and_torch_loss_curves_agree(numpy_vs_torch):
    v = numpy_vs_torch.values
    assert v["max_loss_diff"] <= 1e-9
    assert v["max_weight_diff"] <= 1e-9
    assert v["numpy_final_loss"] == pytest.approx(v["torch_final_loss"],
                                                  abs=1e-9)


def test_the_network_learns(numpy_vs_torch):
    v = numpy_vs_torch.values
    assert v["numpy_final_loss"] < 0.5 * v["initial_loss"]
    assert v["accuracy"] >= 0.9          # chance is 0.5


def test_values_are_plain(numpy_vs_torch, speed, gradients):
    for result in (numpy_vs_torch, speed, gradients):
        for value in result.values.values():
            items = value if isinstance(value, list) else [value]
            assert all(isinstance(x, (bool, int, float, str)) for x in items)


def test_the_comparison_would_catch_a_wrong_backprop(monkeypatch):
    right = basics.numpy_forward_backward

    def forgot_the_bias_gradient(params, X, y):
        loss, grads = right(params, X, y)
        grads[1] = np.zeros_like(grads[1])
        return loss, grads

    monkeypatch.setattr(basics, "numpy_forward_backward",
                        forgot_the_bias_gradient)
    v = basics.numpy_vs_torch("cpu", "small").values
    assert v["max_grad_diff"] > 1e-4
    assert v["max_loss_diff"] > 1e-6


def test_the_two_training_steps_are_parallel():
    # The side-by-side slide: the same forward pass, line for line.
    import inspect
    numpy_src = inspect.getsource(basics.numpy_forward_backward)
    torch_src = inspect.getsource(basics.torch_forward_backward)
    for line in ("W1, b1, W2, b2 = params", "logits = h @ W2 + b2"):
        assert line in numpy_src and line in torch_src
    assert len(torch_src.splitlines()) <= 10
    assert len(numpy_src.splitlines()) <= 12  # a listing on a slide is at most 12 lines


def test_speed_table_has_a_row_per_width(speed):
    table = speed.tables[0]
    widths = speed.values["widths"]
    assert [row[0] for row in table.rows] == widths
    assert table.columns == ["width n", "numpy", "torch cpu"]
    assert all(len(row) == len(table.columns) for row in table.rows)
    assert len(speed.timings) == 2 * len(widths)


def test_cpu_build_says_there_was_no_gpu(speed):
    assert speed.values["gpu_available"] is False
    if not torch.cuda.is_available():
        assert "No GPU" in speed.values["device_note"]


def test_gradients_are_not_hidden(gradients):
    v = gradients.values
    assert v["gradcheck_ok"] is True
    assert v["hook_matches_grad"] is True
    assert v["hook_norm"] == v["grad_norm"] > 0
    assert v["hook_clips"] is True
    assert v["input_grad_shape"] == [basics.SIZES["small"]["points"], 2]


def test_gradcheck_catches_a_wrong_gradient():
    class WrongTanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tanh(x)

        @staticmethod
        def backward(ctx, grad):
            x, = ctx.saved_tensors
            return grad * (1 - x ** 2)        # should be 1 - tanh(x)**2

    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(WrongTanh.apply, (x,),
                                        raise_exception=False)


def test_figures_have_alt_text(numpy_vs_torch, speed, gradients):
    figures = numpy_vs_torch.figures + speed.figures + gradients.figures
    assert len(figures) == 4
    for figure in figures:
        assert len(figure.alt) > 40
        width, height = figure.figure.get_size_inches()
        assert width <= WIDTH and height <= HEIGHT   # fits the slide under a heading


def test_prints_are_short(capsys):
    basics.numpy_vs_torch("cpu", "small")
    out = capsys.readouterr().out.strip().splitlines()
    assert 1 <= len(out) <= 5
    assert "gradient difference" in out[0]


def test_speed_notes_are_sentences(speed):
    assert speed.values["device_note"].endswith(".")
    busy = speed.measured["busy_note"]
    assert busy == "" or "busy" in busy


def test_once_times_a_single_call_and_says_it_is_one_run():
    from demos._timing import once
    value, timing = once(lambda: sum(range(1000)))
    assert value == sum(range(1000))
    assert timing.repeats == 1 and timing.single_run and timing.median_s > 0
    assert timing.high_s == float("inf")


def test_flat_until_finds_where_a_line_leaves_its_floor():
    widths = [32, 64, 128, 256]
    assert basics.flat_until(widths, [1.0, 1.1, 1.9, 5.0]) == 128
    assert basics.flat_until(widths, [1.0, 1.0, 1.0, 1.0]) == 256
    assert basics.flat_until(widths, [1.0, 3.0, 1.0, 1.0]) == 32


def test_speed_states_the_matmul_precision(speed):
    assert speed.values["precision"] == (
        f"float32 (precision {torch.get_float32_matmul_precision()!r}, TF32 off)")
    assert speed.values["cpu_largest_width"] == speed.values["largest_width"]  # on the CPU, every line is full
