"""Part 5 of the talk, "Making it real": C++, distributed training, ONNX.

Three ways a PyTorch model leaves the notebook: compiled ahead of time with
AOTInductor and run from a C++ ``main`` (``production.cpp``, no Python at run
time); trained by several processes at once with DistributedDataParallel; and
exported to ONNX to run in onnxruntime.  TorchScript, the old road to C++, is
deprecated in torch 2.13, and a demo shows its warning.
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import tempfile
import time
import warnings

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from deck.result import Result, Table, Timing
from demos._timing import measure, one_thread

CPP_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "production.cpp")


def make_mlp(width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, 4))


def _width(size: str) -> int:
    return 256 if size == "full" else 32


def _time_once(fn, *args, **kwargs):
    """Call ``fn`` once; return its result and the wall-clock time it took.

    For one-shot host work (export, compile, build): labelled "cpu".
    """
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, Timing(median_s=time.perf_counter() - start, iqr_s=0.0,
                       repeats=1, device="cpu")


def _run(command: list[str]) -> str:
    """Run a program; on failure, raise with what it wrote to stderr."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n"
                           f"{done.stderr[-4000:]}")
    return done.stdout


# --- (a) AOTInductor: compile in Python, run from C++ -----------------------

def build_cpp_program(source: str, binary: str) -> None:
    """g++ against the libtorch that ships inside the pip wheel."""
    from torch.utils.cpp_extension import include_paths, library_paths
    lib = library_paths()[0]  # .../site-packages/torch/lib
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)  # must match the wheel's
    # torch_cuda exists in CUDA wheels only; --no-as-needed keeps it linked
    libs = [f"-l{name}" for name in ("torch", "torch_cpu", "torch_cuda", "c10")
            if os.path.exists(os.path.join(lib, f"lib{name}.so"))]
    _run(["g++", "-std=c++20", source, "-o", binary,
          f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
          *[f"-I{path}" for path in include_paths()],
          f"-L{lib}", f"-Wl,-rpath,{lib}", "-Wl,--no-as-needed", *libs])


def compile_for_cpp(model: nn.Module, x: torch.Tensor, workdir: str):
    """Python side: export the graph, AOT-compile a .pt2, build the C++."""
    exported, export_t = _time_once(torch.export.export, model, (x,))
    package, compile_t = _time_once(
        torch._inductor.aoti_compile_and_package, exported,
        package_path=os.path.join(workdir, "mlp.pt2"))
    binary = os.path.join(workdir, "production")
    _, build_t = _time_once(build_cpp_program, CPP_SOURCE, binary)
    return package, binary, {"export": export_t, "compile": compile_t,
                             "cpp_build": build_t}


def run_in_cpp(binary: str, package: str, x: torch.Tensor):
    """Hand C++ the input as raw float32 bytes; read back what it prints."""
    input_path = package + ".input.bin"
    x.detach().cpu().numpy().astype("<f4").tofile(input_path)
    printed = _run([binary, package, input_path, *map(str, x.shape)])
    rows = [line.split() for line in printed.strip().splitlines()]
    values = torch.tensor([[float(v) for v in row] for row in rows])
    return "\n".join(" ".join(row) for row in rows), values


def cpp_aotinductor(device: str, size: str = "full") -> Result:
    """Export + AOTInductor in Python, then a C++ main runs the package."""
    torch.manual_seed(0)
    model = make_mlp(_width(size)).to(device).eval()
    x = torch.randn(4, 16, device=device)  # compiled for x's device
    with tempfile.TemporaryDirectory() as workdir:
        package, binary, timings = compile_for_cpp(model, x, workdir)
        printed, from_cpp = run_in_cpp(binary, package, x)
    with torch.inference_mode():
        eager = model(x).cpu()
    diff = (from_cpp - eager).abs().max().item()
    print(f"C++ printed:\n{printed}\nmax |C++ - eager| = {diff:.2e}")
    return Result(
        values={"max_abs_diff": diff, "cpp_output": printed,
                "cpp_values": int(from_cpp.numel()),
                "eager_values": int(eager.numel())},
        measured={f"{name}_s": t.median_s for name, t in timings.items()},
        timings=timings)


class _Double(nn.Module):
    def forward(self, x):
        return 2 * x


def torchscript_is_deprecated(device: str, size: str = "full") -> Result:
    """TorchScript still runs in torch 2.13, but it warns: move on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scripted = torch.jit.script(_Double().to(device))
    notices = [w for w in caught if "deprecat" in str(w.message).lower()]
    warning = str(notices[0].message) if notices else "(no warning)"
    is_deprecation = bool(notices) and issubclass(
        notices[0].category, (DeprecationWarning, FutureWarning))
    x = torch.arange(3.0, device=device)
    print(f"torch.jit.script warns: {warning}")
    return Result(values={"warning": warning,
                          "is_deprecation_warning": is_deprecation,
                          "still_runs": bool(torch.equal(scripted(x), 2 * x))})


# --- (b) DistributedDataParallel: two processes, one model ------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one
        return s.getsockname()[1]


def train_replica(rank: int, world_size: int, port: int, steps: int,
                  out_dir: str) -> None:
    """One DDP process: same model on every rank, its own shard of data."""
    torch.set_num_threads(1)  # one core per process (like OMP_NUM_THREADS=1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world_size)
    model = DDP(make_mlp())  # DDP copies rank 0's weights to every rank
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    torch.manual_seed(rank)  # different data on every rank
    step_s = [timed_step(model, optimizer) for _ in range(steps)]
    torch.save({"params": [p.detach() for p in model.parameters()],
                "step_s": step_s}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()  # nobody hangs up while another rank is still talking
    dist.destroy_process_group()


def timed_step(model: nn.Module, optimizer) -> float:
    """One training step on fresh random data; returns its wall time."""
    x, y = torch.randn(64, 16), torch.randn(64, 4)
    start = time.perf_counter()
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()  # all-reduces grads
    optimizer.step()
    return time.perf_counter() - start


def spawn_replicas(world_size: int, steps: int) -> list[dict]:
    """Start one process per rank; each trains and saves its replica."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(train_replica, nprocs=world_size, join=True,
                 args=(world_size, free_port(), steps, out_dir))
        return [torch.load(os.path.join(out_dir, f"rank{rank}.pt"))
                for rank in range(world_size)]


def _median_timing(samples: list[float], device: str) -> Timing:
    quartiles = statistics.quantiles(samples, n=4)
    return Timing(median_s=statistics.median(samples),
                  iqr_s=quartiles[2] - quartiles[0], repeats=len(samples),
                  device=device)


def ddp_two_processes(device: str, size: str = "full") -> Result:
    """Two processes train one model with DDP; their replicas stay equal."""
    # gloo on the CPU whatever `device` is: two processes cannot share one
    # GPU with NCCL.  With many GPUs: NCCL, and one process per GPU.
    world_size, steps = 2, (50 if size == "full" else 10)
    ranks = spawn_replicas(world_size, steps)
    diff = max((a - b).abs().max().item() for a, b in
               zip(ranks[0]["params"], ranks[1]["params"]))
    step = _median_timing([s for r in ranks for s in r["step_s"]], "cpu")
    print(f"{world_size} processes x {steps} steps, gloo; "
          f"max parameter difference between replicas: {diff}")
    return Result(values={"replicas_identical": diff == 0.0,
                          "max_param_diff": diff, "world_size": world_size,
                          "steps": steps, "backend": "gloo"},
                  measured={"step_s": step.median_s},
                  timings={"step": step})


# --- (c) ONNX: export once, run anywhere -----------------------------------

def export_to_onnx(model: nn.Module, x: torch.Tensor, path: str):
    """torch.export under the hood, ONNX graph out; checked, then loaded."""
    import onnx
    import onnxruntime as ort
    torch.onnx.export(model, (x,), path)  # the torch.export-based exporter
    onnx.checker.check_model(onnx.load(path))  # raises if the file is bad
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one thread, like torch below
    return ort.InferenceSession(path, options,
                                providers=["CPUExecutionProvider"])


def onnx_export(device: str, size: str = "full") -> Result:
    """Export an MLP to ONNX, run it in onnxruntime, compare with PyTorch."""
    import onnx
    # Like with like: onnxruntime runs here on the CPU, so torch does too,
    # whatever device the rest of the talk used.
    torch.manual_seed(0)
    model = make_mlp(_width(size)).eval()
    x = torch.randn(32, 16)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.onnx")
        session = export_to_onnx(model, x, path)
        size_kb = os.path.getsize(path) / 1024
        opset = next(o.version for o in onnx.load(path).opset_import
                     if o.domain in ("", "ai.onnx"))
    feed = {session.get_inputs()[0].name: x.numpy()}
    with torch.inference_mode(), one_thread():
        expected = model(x)
        torch_t = measure(lambda: model(x), "cpu")
    from_ort = torch.from_numpy(session.run(None, feed)[0])
    diff = (from_ort - expected).abs().max().item()
    ort_t = measure(lambda: session.run(None, feed), "cpu")
    print(f"ONNX opset {opset}, {size_kb:.1f} KB; "
          f"max |onnxruntime - torch| = {diff:.2e}")
    table = Table(["runtime", "device", "latency (median)"],
                  [["PyTorch eager", "cpu, 1 thread", str(torch_t)],
                   ["onnxruntime", "cpu, 1 thread", str(ort_t)]],
                  caption=f"MLP forward, batch of {x.shape[0]}")
    return Result(values={"max_abs_diff": diff, "size_kb": size_kb,
                          "opset": int(opset), "checker_passed": True,
                          "batch": int(x.shape[0])},
                  tables=[table],
                  timings={"torch": torch_t, "onnxruntime": ort_t})


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
