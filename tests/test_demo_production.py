"""Part 5 demos: C++ via AOTInductor, DDP as torchrun starts it, ONNX."""
import multiprocessing
import os

import pytest
import torch

from demos import production

pytestmark = pytest.mark.usefixtures("demo_tmpdir")


def _child_pids() -> set[int]:
    """Live processes whose parent is this test process (Linux /proc)."""
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            children.add(int(entry))
    return children


@pytest.mark.slow
def test_cpp_program_matches_eager_on_a_batch_size_the_export_never_saw(talk_build):
    result = talk_build.result("production.cpp_aotinductor")   # compiling and g++ take a minute: run once
    values = result.values
    assert values["max_abs_diff"] <= 1e-5
    # the C++ program really ran: it wrote one number per output element, for its own batch
    assert values["cpp_values"] == values["eager_values"] == values["cpp_rows"] * 4
    assert values["cpp_rows"] != values["export_rows"]
    assert f"C++ ran a batch of {values['cpp_rows']}" in result.output.text
    for name in ("export", "compile", "cpp_build"):
        assert result.timings[name].median_s > 0
        assert result.timings[name].repeats == 1  # a one-off cost, timed once
        assert result.measured[f"{name}_s"] == result.timings[name].median_s


def test_cpp_source_fits_a_slide():
    with open(production.CPP_SOURCE) as f:
        lines = f.read().splitlines()
    assert len(lines) <= 12
    assert max(map(len, lines)) <= 90


@pytest.mark.slow
def test_the_export_shown_takes_any_batch_size():
    """dynamic_shapes: the exported graph runs a batch it was not exported with."""
    torch.manual_seed(0)
    model = production.make_mlp(8).eval()
    exported = production.export_model(model, torch.randn(4, 16))
    x = torch.randn(9, 16)
    assert torch.allclose(exported.module()(x), model(x))


@pytest.mark.slow
def test_ddp_replicas_identical_and_no_process_left():
    before = _child_pids()
    result = production.ddp_two_processes("cpu", "small")
    values = result.values
    assert values["world_size"] == 2
    assert values["replicas_identical"] is True
    assert values["max_param_diff"] == 0.0
    assert result.timings["run"].median_s > 0
    assert multiprocessing.active_children() == []
    # spawn's resource tracker may stay as a helper; no rank may stay alive
    leftover = {pid for pid in _child_pids() - before
                if "resource_tracker" not in _cmdline(pid)}
    assert leftover == set()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_onnx_export_matches_torch():
    result = production.onnx_export("cpu", "small")
    values = result.values
    assert values["checker_passed"] is True
    assert values["max_abs_diff"] <= 1e-5
    assert values["opset"] >= 17
    assert values["size_kb"] > 0
    assert result.timings["torch"].median_s > 0
    assert result.timings["onnxruntime"].median_s > 0
    assert [row[1] for row in result.tables[0].rows] == ["cpu, 1 thread"] * 2  # like with like


def test_onnx_compares_on_the_cpu_whatever_the_device(monkeypatch):
    """On a GPU build torch must not run on the GPU against onnxruntime on the CPU."""
    used = []
    real = production.measure
    monkeypatch.setattr(production, "measure", lambda fn, device="cpu", **kw: used.append(device) or real(fn, device, **kw))
    monkeypatch.setattr(production, "make_mlp", lambda width: _model_that_cannot_move(width))
    production.onnx_export("cuda", "small")  # would fail if anything were moved to cuda
    assert used == ["cpu", "cpu"]


def _model_that_cannot_move(width):
    model = torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.ReLU(), torch.nn.Linear(width, 4))
    model.to = None  # moving the model to a device is what this test forbids
    return model


def test_helpers_are_not_demos():
    from demos._main import demos_in
    assert set(demos_in(production)) == {"cpp_aotinductor", "ddp_two_processes", "onnx_export"}


def test_the_replica_takes_who_it_is_from_the_environment(monkeypatch):
    """As under torchrun: no rank, world size or address is passed in; one process here."""
    import tempfile
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(production.free_port()))
    with tempfile.TemporaryDirectory() as out_dir:
        production.train_replica(2, out_dir)
        params = torch.load(os.path.join(out_dir, "rank0.pt"))
    assert len(params) == 4 and not torch.distributed.is_initialized()
