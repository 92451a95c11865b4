"""Part 5 demos: C++ via AOTInductor, TorchScript's deprecation, DDP, ONNX."""
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
def test_cpp_program_matches_eager(capsys):
    result = production.cpp_aotinductor("cpu", "small")
    values = result.values
    assert values["max_abs_diff"] <= 1e-5
    # the C++ program really ran: it printed one number per output element
    assert values["cpp_values"] == values["eager_values"] == 16
    printed = values["cpp_output"].split()
    assert len(printed) == values["eager_values"]
    assert all(float(v) == float(v) for v in printed)  # numbers, not NaN
    assert values["cpp_output"] in capsys.readouterr().out
    for name in ("export", "compile", "cpp_build"):
        assert result.timings[name].median_s > 0
        assert result.measured[f"{name}_s"] == result.timings[name].median_s


def test_cpp_source_is_shown_size():
    with open(production.CPP_SOURCE) as f:
        lines = f.read().splitlines()
    assert len(lines) <= 20
    assert max(map(len, lines)) <= 80


def test_torchscript_warns_deprecated():
    values = production.torchscript_is_deprecated("cpu", "small").values
    assert "deprecated" in values["warning"]
    assert values["is_deprecation_warning"] is True
    assert values["still_runs"] is True


@pytest.mark.slow
def test_ddp_replicas_identical_and_no_process_left():
    before = _child_pids()
    result = production.ddp_two_processes("cpu", "small")
    values = result.values
    assert values["world_size"] == 2
    assert values["replicas_identical"] is True
    assert values["max_param_diff"] == 0.0
    assert result.timings["step"].median_s > 0
    assert result.timings["step"].repeats == 2 * values["steps"]
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
    assert set(demos_in(production)) == {
        "cpp_aotinductor", "torchscript_is_deprecated",
        "ddp_two_processes", "onnx_export"}
