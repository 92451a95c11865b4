"""Part 5 of the talk, "Making it real": C++, distributed training, ONNX.

Three ways a PyTorch model leaves the notebook: compiled ahead of time with
AOTInductor and run from a C++ ``main`` (``production.cpp``, no Python at run
time); trained by several processes at once with DistributedDataParallel; and
exported to ONNX to run in onnxruntime.  The functions shown on the slides are
what a user writes; timing, building and process start-up live in the helpers
beside them.  (TorchScript's deprecation is shown once, in ``demos/history.py``.)
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile

import onnx
import onnxruntime as ort
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from deck.result import Result, Table
from demos._timing import measure, once, one_thread

CPP_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "production.cpp")


def make_mlp(width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, 4))


def _width(size: str) -> int:
    return 256 if size == "full" else 32


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


def export_model(model: nn.Module, x: torch.Tensor):
    """One graph with the weights and no Python; any batch size."""
    batch = torch.export.Dim("batch")
    return torch.export.export(model, (x,), dynamic_shapes=({0: batch},))


def compile_package(exported, path: str) -> str:
    """AOTInductor: compile the graph ahead of time into a .pt2 package."""
    return torch._inductor.aoti_compile_and_package(exported, package_path=path)


def compile_for_cpp(model: nn.Module, x: torch.Tensor, workdir: str):
    """Export, compile and build the C++ program, each timed as the one run it is."""
    exported, export_t = once(lambda: export_model(model, x))
    package, compile_t = once(lambda: compile_package(exported, os.path.join(workdir, "mlp.pt2")))
    binary = os.path.join(workdir, "production")
    _, build_t = once(lambda: build_cpp_program(CPP_SOURCE, binary))
    return package, binary, {"export": export_t, "compile": compile_t, "cpp_build": build_t}


def run_in_cpp(binary: str, package: str, x: torch.Tensor) -> torch.Tensor:
    """Hand C++ the input as raw float32 bytes, its shape on the command line; read back
    the output it wrote."""
    input_path, output_path = package + ".input.bin", package + ".output.bin"
    x.detach().cpu().numpy().astype("<f4").tofile(input_path)
    _run([binary, package, input_path, output_path, *map(str, x.shape)])
    outputs = os.path.getsize(output_path) // 4  # float32
    return torch.from_file(output_path, size=outputs, dtype=torch.float32).view(x.shape[0], -1)


def cpp_aotinductor(device: str, size: str = "full") -> Result:
    """Export + AOTInductor in Python, then a C++ main runs the package on another batch size."""
    torch.manual_seed(0)
    model = make_mlp(_width(size)).to(device).eval()
    x = torch.randn(4, 16, device=device)  # compiled for x's device
    x_cpp = torch.randn(7, 16, device=device)  # a batch size the export never saw
    with tempfile.TemporaryDirectory() as workdir:
        package, binary, timings = compile_for_cpp(model, x, workdir)
        from_cpp = run_in_cpp(binary, package, x_cpp)
    with torch.inference_mode():
        eager = model(x_cpp).cpu()
    diff = (from_cpp - eager).abs().max().item()
    print(f"exported with a batch of {x.shape[0]}; C++ ran a batch of {x_cpp.shape[0]} "
          f"and wrote {tuple(from_cpp.shape)}; max |C++ - eager| = {diff:.2e}")
    return Result(
        values={"max_abs_diff": diff, "cpp_values": int(from_cpp.numel()),
                "eager_values": int(eager.numel()),
                "export_rows": int(x.shape[0]), "cpp_rows": int(from_cpp.shape[0])},
        measured={f"{name}_s": t.median_s for name, t in timings.items()},
        timings=timings)


# --- (b) DistributedDataParallel: two processes, one model ------------------

def train_replica(steps: int, out_dir: str) -> None:
    dist.init_process_group("gloo")  # rank, world size, address: from torchrun
    model = DDP(make_mlp())  # DDP copies rank 0's weights to every rank
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    torch.manual_seed(dist.get_rank())  # different data on every rank
    for _ in range(steps):
        x, y = torch.randn(64, 16), torch.randn(64, 4)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()  # DDP averages the grads
        optimizer.step()
    save_replica(model, out_dir)
    dist.destroy_process_group()


def save_replica(model: nn.Module, out_dir: str) -> None:
    """This rank's parameters, for the check that every replica is the same."""
    params = [p.detach() for p in model.parameters()]
    torch.save(params, os.path.join(out_dir, f"rank{dist.get_rank()}.pt"))
    dist.barrier()  # nobody hangs up while another rank is still talking


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one
        return s.getsockname()[1]


def _as_torchrun_starts_it(rank: int, world_size: int, port: int, steps: int,
                           out_dir: str) -> None:
    """The environment torchrun gives each of its processes, on this machine only."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # torchrun's OMP_NUM_THREADS=1: one core per process
    train_replica(steps, out_dir)


def spawn_replicas(world_size: int, steps: int) -> list[list[torch.Tensor]]:
    """Start one process per rank, as torchrun would; each trains and saves its replica."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_as_torchrun_starts_it, nprocs=world_size, join=True,
                 args=(world_size, free_port(), steps, out_dir))
        return [torch.load(os.path.join(out_dir, f"rank{rank}.pt"))
                for rank in range(world_size)]


def ddp_two_processes(device: str, size: str = "full") -> Result:
    """Two processes train one model with DDP; their replicas stay equal."""
    # gloo on the CPU whatever `device` is: two processes cannot share one
    # GPU with NCCL.  With many GPUs: NCCL, and one process per GPU.
    world_size, steps = 2, (50 if size == "full" else 10)
    ranks, run_t = once(lambda: spawn_replicas(world_size, steps))
    diff = max((a - b).abs().max().item() for a, b in zip(ranks[0], ranks[1]))
    print(f"{world_size} processes x {steps} steps, gloo; "
          f"max parameter difference between replicas: {diff}")
    return Result(values={"replicas_identical": diff == 0.0,
                          "max_param_diff": diff, "world_size": world_size,
                          "steps": steps, "backend": "gloo"},
                  timings={"run": run_t})


# --- (c) ONNX: export once, run anywhere -----------------------------------

def export_to_onnx(model: nn.Module, x: torch.Tensor, path: str):
    """Export (torch.export under the hood), check the file, open it in onnxruntime."""
    torch.onnx.export(model, (x,), path)
    onnx.checker.check_model(onnx.load(path))  # raises if the file is bad
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def one_thread_session(path: str):
    """For the timing: onnxruntime on one thread, like torch beside it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnx_export(device: str, size: str = "full") -> Result:
    """Export an MLP to ONNX, run it in onnxruntime, compare with PyTorch."""
    # Like with like: onnxruntime runs here on the CPU, so torch does too,
    # whatever device the rest of the talk used.
    torch.manual_seed(0)
    model = make_mlp(_width(size)).eval()
    x = torch.randn(32, 16)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.onnx")
        session = export_to_onnx(model, x, path)
        timed_session = one_thread_session(path)
        size_kb = os.path.getsize(path) / 1024
        opset = next(o.version for o in onnx.load(path).opset_import
                     if o.domain in ("", "ai.onnx"))
    feed = {session.get_inputs()[0].name: x.numpy()}
    with torch.inference_mode(), one_thread():
        expected = model(x)
        torch_t = measure(lambda: model(x), "cpu")
    from_ort = torch.from_numpy(session.run(None, feed)[0])
    diff = (from_ort - expected).abs().max().item()
    ort_t = measure(lambda: timed_session.run(None, feed), "cpu")
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
