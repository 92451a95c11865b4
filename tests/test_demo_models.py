"""The claims the "Building complex models" slides make, checked at size small."""
import math
import os
import subprocess
import sys

import pytest
import torch

from demos import models
from deck.result import Result
from demos._figures import HEIGHT, WIDTH
from demos._main import demos_in

pytestmark = pytest.mark.usefixtures("demo_tmpdir")   # torch.compile's headers go to TMPDIR

DEMOS = ["compose_modules", "data_pipeline", "train_with_scheduler",
         "checkpoint_roundtrip", "compile_speedup", "profile_top_ops",
         "forgotten_zero_grad", "forgotten_eval"]
_cache = {}


def run(name: str) -> Result:
    """Each demo runs once per test session, on the CPU, at size small."""
    if name not in _cache:
        _cache[name] = getattr(models, name)("cpu", "small")
    return _cache[name]


def test_the_module_exposes_exactly_its_demos():
    assert sorted(demos_in(models)) == sorted(DEMOS)


@pytest.mark.parametrize("name", [d for d in DEMOS if d != "compile_speedup"])
def test_values_are_plain_and_figures_have_alt_text(name):
    result = run(name)
    for key, value in result.values.items():
        items = value if isinstance(value, list) else [value]
        assert all(isinstance(v, (bool, int, float, str)) for v in items), key
        assert not (isinstance(value, float) and math.isnan(value)), key
    for figure in result.figures:
        assert figure.alt
        width, height = figure.figure.get_size_inches()
        assert width <= WIDTH and height <= HEIGHT   # fits the slide under a heading


def test_parameter_count_matches_a_count_by_hand():
    v = run("compose_modules").values
    n_in, w, depth, n_out = v["n_in"], v["width"], v["depth"], v["n_out"]
    linear = lambda a, b: a * b + b  # weight and bias
    block = 2 * w + linear(w, 4 * w) + linear(4 * w, w)  # LayerNorm + MLP
    assert v["n_parameters"] == linear(n_in, w) + depth * block + linear(w, n_out)
    assert v["output_shape"] == [5, n_out]


def test_dataloader_batches_have_the_promised_shapes():
    v = run("data_pipeline").values
    cfg = models.SIZES["small"]
    assert v["x_shape"] == [cfg["batch"], 2]
    assert v["y_shape"] == [cfg["batch"]]
    assert v["x_dtype"] == "torch.float32" and v["y_dtype"] == "torch.int64"
    assert v["n_batches"] == math.ceil(cfg["n_examples"] / cfg["batch"])
    assert set(run("data_pipeline").timings) == {"loader_epoch", "slicing_epoch"}


def test_an_epoch_of_the_loader_sees_every_example_once():
    dataset = models.SpiralDataset(100)
    ys = torch.cat([y for _, y in models.make_loader(dataset, 32)])
    assert len(ys) == 100
    assert not torch.equal(ys, dataset.y)  # shuffled ...
    assert torch.equal(ys.sort().values, dataset.y.sort().values)  # ... all once


def test_loss_falls_and_the_learning_rate_follows_one_cycle():
    result = run("train_with_scheduler")
    v = result.values
    assert v["final_loss"] < v["initial_loss"] / 10
    assert v["test_accuracy"] > 0.9
    assert v["peak_lr"] == pytest.approx(v["max_lr"])
    assert abs(v["peak_step"] - 0.3 * v["n_steps"]) <= 1  # warm-up: 30%
    assert v["initial_lr"] == pytest.approx(v["max_lr"] / 25)  # div_factor
    assert v["final_lr"] == pytest.approx(v["max_lr"] / 25 / 1e4)
    assert len(result.figures) == 1


def test_checkpoint_restores_identical_outputs_and_resumes_identically():
    v = run("checkpoint_roundtrip").values
    assert v["max_abs_diff"] == 0.0 and v["identical"] is True
    assert v["resumed_max_abs_diff"] == 0.0  # optimizer state came back too
    assert v["step"] == 20 and v["file_bytes"] > 0
    assert v["whole_model_refused"] is True  # weights_only=True loads no code


def test_profiler_table_lists_ops_with_positive_times():
    result = run("profile_top_ops")
    (table,) = result.tables
    assert 0 < len(table.rows) <= 6
    assert table.columns == ["operator (aten::)", "calls", "self CPU"]  # operators only, no kernels
    for name, calls, self_time in table.rows:
        assert name and len(name) <= 30 and calls > 0
        assert float(self_time.removesuffix(" ms")) > 0
    assert result.measured["top_op"] == table.rows[0][0]
    assert result.measured["cpu_bound"] is False and 0 < result.measured["matmul_share"] < 1


def test_top_ops_keeps_operators_and_drops_kernels():
    class Event:
        def __init__(self, key, cpu, gpu):
            self.key, self.count = key, 1
            self.self_cpu_time_total, self.self_device_time_total = cpu, gpu
    kernel = "void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl<float>>(int)"
    events = [Event(kernel, 0, 900), Event("aten::addmm", 10, 500), Event("aten::gelu", 20, 100)]
    assert [r[0] for r in models.top_ops(events, "cuda")] == ["addmm", "gelu"]      # by GPU time
    assert [r[0] for r in models.top_ops(events, "cpu")] == ["gelu", "addmm"]       # by CPU time


def test_backward_adds_to_grad_unless_zero_grad_is_called():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # steps change nothing
    x, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    models.train_step(model, optimizer, x, y)
    once = model.weight.grad.clone()
    models.train_step(model, optimizer, x, y, zero_grad=False)
    torch.testing.assert_close(model.weight.grad, 2 * once)
    models.train_step(model, optimizer, x, y)
    torch.testing.assert_close(model.weight.grad, once)


def test_forgetting_zero_grad_trains_worse():
    result = run("forgotten_zero_grad")
    v = result.values
    assert math.isfinite(v["final_loss_forgotten"])
    assert v["final_loss_forgotten"] > v["final_loss_correct"]
    assert v["final_loss_forgotten"] > v["initial_loss"]  # worse than untrained
    assert v["final_loss_correct"] < v["initial_loss"] / 5
    assert len(result.figures) == 1


def test_train_mode_is_random_and_eval_mode_is_not():
    v = run("forgotten_eval").values
    assert v["train_mode_max_diff"] > 0 and v["train_mode_flipped"] > 0
    assert v["eval_mode_max_diff"] == 0.0 and v["eval_mode_flipped"] == 0.0
    assert v["eval_mode_accuracy"] > 0.9
    assert v["train_mode_accuracy"] < v["eval_mode_accuracy"] - 0.2  # the damage the slide shows is large
    assert v["train_mode_shuffled_accuracy"] > v["train_mode_accuracy"] + 0.2  # batches of one class cause it
    assert v["running_stats_changed"] is True  # evaluating mutated the model


@pytest.mark.slow
def test_compile_costs_time_once_and_matches_eager(talk_build):
    result = talk_build.result("models.compile_speedup")   # a cold compile per mode: run once, by the build
    assert result.measured["compile_s"] > 0
    assert result.values["max_abs_diff"] < 1e-4
    assert result.values["kernels"] == 1 and result.values["eager_ops"] == 8  # eight ops fused into one kernel
    assert result.values["modes"] == ["default"] and result.measured["compile_reduce_overhead_s"] is None
    assert set(result.timings) == {"eager", "default"}


def test_gelu_by_hand_has_the_eight_ops_its_docstring_counts():
    assert models.count_ops(models.gelu_by_hand) == 8
    assert "eight elementwise ops" in models.gelu_by_hand.__doc__


def test_time_split_sums_self_times_and_the_matrix_products_share():
    class Event:
        def __init__(self, key, cpu, gpu):
            self.key, self.self_cpu_time_total, self.self_device_time_total = key, cpu, gpu
    events = [Event("aten::mm", 3e6, 1e6), Event("aten::add", 2e6, 1e6), Event("kernel", 0, 5e6)]
    split = models.time_split(events)
    assert split == {"self_cpu_s": 5.0, "self_gpu_s": 2.0, "matmul_share": 0.5}
    assert models.time_split([Event("aten::mm", 3e6, 0), Event("aten::add", 1e6, 0)])["matmul_share"] == 0.75


def test_the_compile_input_is_gpu_sized_only_on_a_gpu_at_full_size():
    assert models._gelu_input("cpu", "full").shape == (4 * models.SIZES["full"]["n_examples"], 256)
    assert models._gelu_input("cpu", "small").shape == (4 * models.SIZES["small"]["n_examples"], 256)


def test_gelu_by_hand_is_gelu():
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(models.gelu_by_hand(x), torch.nn.functional.gelu(x, approximate="tanh"))


@pytest.mark.slow
def test_the_module_runs_from_the_command_line_and_leaves_no_temporary_folder(demo_tmpdir):
    scratch = demo_tmpdir
    done = subprocess.run(
        [sys.executable, "-m", "demos.models", "--size", "small",
         "--device", "cpu", "compose_modules", "checkpoint_roundtrip"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr
    assert "n_parameters" in done.stdout and "identical = True" in done.stdout
    # (torch's own Inductor cache folder, made when an optimizer is created, is not ours)
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []
