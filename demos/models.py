"""Content #3: building complex models — best practices and utilities.

Composing ``nn.Module``s, feeding them with ``Dataset``/``DataLoader``, an
optimizer with a learning-rate schedule, checkpoints, ``torch.compile`` and the
profiler; then two measured cases where an abstraction's hidden state bites:
a forgotten ``zero_grad()`` and a forgotten ``eval()``.
"""
from __future__ import annotations

import math
import os
import tempfile

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deck.result import Figure, Result, Table
from demos._figures import PALETTE, legible, plain_log_ticks, slide_figure
from demos._timing import measure, once, synchronize

# Knobs per size: "small" for the tests (seconds on a CPU), "full" for the talk.
SIZES = {
    "small": dict(n_examples=512, width=32, depth=2, batch=64, steps=150),
    "full": dict(n_examples=4096, width=64, depth=3, batch=128, steps=400),
}


# --- Data: three interleaved spirals, a task no linear model can do ---

def make_spirals(n: int, n_classes: int = 3, seed: int = 0):
    """Points on ``n_classes`` spiral arms: x is (n, 2), y the arm, (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    radius = torch.rand(n, generator=g)
    angle = 4 * y + 4 * radius + 0.2 * torch.randn(n, generator=g)
    x = torch.stack([radius * torch.sin(angle), radius * torch.cos(angle)], 1)
    return x, y


def spirals_on(device: str, n: int, seed: int = 0):
    x, y = make_spirals(n, seed=seed)
    return x.to(device), y.to(device)


class SpiralDataset(Dataset):
    """Map-style: it knows its length and returns example i."""

    def __init__(self, n: int, seed: int = 0):
        self.x, self.y = make_spirals(n, seed=seed)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


# --- Models built from modules ---

class ResidualBlock(nn.Module):
    """x + MLP(LayerNorm(x)): the block deep models repeat."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width),
                                 nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x):
        return x + self.mlp(self.norm(x))  # a skip: not a chain


class ResidualMLP(nn.Module):
    """Embed, ``depth`` residual blocks, a linear head."""

    def __init__(self, n_in: int, width: int, depth: int, n_out: int):
        super().__init__()
        self.embed = nn.Linear(n_in, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width)
                                      for _ in range(depth)))
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(self.blocks(self.embed(x)))


def spiral_classifier(cfg: dict, device: str, seed: int = 0) -> ResidualMLP:
    torch.manual_seed(seed)
    return ResidualMLP(2, cfg["width"], cfg["depth"], 3).to(device)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(module: nn.Module) -> str:
    """The module tree on one line: Name(child, child, ...)."""
    children = [describe(child) for child in module.children()]
    name = type(module).__name__
    return f"{name}({', '.join(children)})" if children else name


def compose_modules(device: str, size: str = "full") -> Result:
    """Build a model from sub-modules; show its tree and parameter count."""
    cfg = SIZES[size]
    model = spiral_classifier(cfg, device)
    for name, child in model.named_children():
        print(f"{name:7s} {type(child).__name__:11s} "
              f"{count_parameters(child):>7,d} parameters")
    print(f"{'total':19s} {count_parameters(model):>7,d} parameters")
    print("each block:", describe(model.blocks[0]))
    out = model(torch.randn(5, 2, device=device))
    return Result(values={
        "n_parameters": count_parameters(model), "width": cfg["width"],
        "depth": cfg["depth"], "n_in": 2, "n_out": 3,
        "n_modules": len(list(model.modules())),
        "n_tensors": len(model.state_dict()), "output_shape": list(out.shape)})


# --- Dataset + DataLoader ---

def make_loader(dataset: Dataset, batch: int) -> DataLoader:
    """Shuffled batches of examples, stacked into tensors."""
    order = torch.Generator().manual_seed(0)  # reproducible
    return DataLoader(dataset, batch_size=batch, shuffle=True,
                      num_workers=0, generator=order)


def epoch_by_slicing(x, y, batch: int):
    """What the loader does, for data already in one tensor: index it."""
    order = torch.randperm(len(y))
    return [(x[i], y[i]) for i in order.split(batch)]


def data_pipeline(device: str, size: str = "full") -> Result:
    """A Dataset and a DataLoader: what a batch looks like, what it costs."""
    cfg = SIZES[size]
    dataset = SpiralDataset(cfg["n_examples"])
    loader = make_loader(dataset, cfg["batch"])
    x, y = (t.to(device) for t in next(iter(loader)))
    print(f"{len(dataset)} examples -> {len(loader)} batches")
    print(f"batch: x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} {y.dtype}")
    *_, (x_last, _) = loader
    timings = {
        "loader_epoch": measure(lambda: list(loader), "cpu", repeats=5),
        "slicing_epoch": measure(lambda: epoch_by_slicing(
            dataset.x, dataset.y, cfg["batch"]), "cpu", repeats=5)}
    return Result(values={
        "n_examples": len(dataset), "batch_size": cfg["batch"],
        "n_batches": len(loader), "x_shape": list(x.shape),
        "y_shape": list(y.shape), "x_dtype": str(x.dtype),
        "y_dtype": str(y.dtype), "last_batch_size": len(x_last)},
        timings=timings)


# --- Training: optimizer + learning-rate schedule ---

def train_step(model, optimizer, x, y, zero_grad=True) -> float:
    """Forward, loss, backward, update: what trainers hide."""
    if zero_grad:
        optimizer.zero_grad()  # .backward() *adds* to .grad
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def random_batches(x, y, batch: int, steps: int, seed: int = 0):
    """``steps`` random mini-batches (with replacement), reproducibly."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(len(y), (batch,), generator=g).to(x.device)
        yield x[i], y[i]


def train_one_cycle(model, x, y, batch, steps, max_lr):
    """AdamW, one-cycle schedule: warm up to max_lr, anneal."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr, total_steps=steps, pct_start=0.3)
    lrs, losses = [], []
    for xb, yb in random_batches(x, y, batch, steps):
        lrs.append(scheduler.get_last_lr()[0])
        losses.append(train_step(model, optimizer, xb, yb))
        scheduler.step()  # per batch, after optimizer.step()
    return lrs, losses


def accuracy(model, x, y) -> float:
    with torch.inference_mode():
        return (model(x).argmax(1) == y).float().mean().item()


def mean_of_last(losses: list[float], fraction: float = 0.05) -> float:
    """Average the last few steps: one mini-batch's loss is noisy."""
    tail = losses[-max(1, int(len(losses) * fraction)):]
    return sum(tail) / len(tail)


def _plot_lr_and_loss(lrs, losses):
    fig = slide_figure(height=5.0)
    ax_lr, ax_loss = fig.subplots(2, 1, sharex=True)
    ax_lr.plot(lrs, color=PALETTE[1], lw=2)
    ax_lr.set_ylabel("learning rate")
    ax_loss.plot(losses, color=PALETTE[0], lw=1)
    ax_loss.set_yscale("log")
    plain_log_ticks(ax_loss.yaxis)
    ax_loss.set_ylabel("loss (log)")
    ax_loss.set_xlabel("step")
    for ax in (ax_lr, ax_loss):
        ax.grid(alpha=0.3)
    legible(ax_lr, ax_loss)
    return fig


def train_with_scheduler(device: str, size: str = "full") -> Result:
    """Train the residual MLP on spirals with AdamW + OneCycleLR."""
    cfg, max_lr = SIZES[size], 1e-2
    model = spiral_classifier(cfg, device)
    x, y = spirals_on(device, cfg["n_examples"])
    lrs, losses = train_one_cycle(model, x, y, cfg["batch"], cfg["steps"],
                                  max_lr)
    test_accuracy = accuracy(model, *spirals_on(device, 1024, seed=1))
    print(f"loss {losses[0]:.3f} -> {mean_of_last(losses):.3f}, "
          f"test accuracy {test_accuracy:.1%}")
    return Result(values={
        "initial_loss": losses[0], "final_loss": mean_of_last(losses),
        "test_accuracy": test_accuracy, "max_lr": max_lr, "initial_lr": lrs[0],
        "peak_lr": max(lrs), "peak_step": lrs.index(max(lrs)),
        "final_lr": lrs[-1], "n_steps": len(lrs)},
        figures=[Figure(_plot_lr_and_loss(lrs, losses), alt=(
            "Two panels over training steps. Top: the learning rate rises from "
            "near zero to its peak in the first 30% of steps, then falls "
            "smoothly back to almost zero. Bottom: the loss on a log scale "
            "falls, noisy from batch to batch, as the learning rate "
            "anneals."))])


# --- Checkpoints: state_dict in, state_dict out ---

def save_checkpoint(path, model, optimizer, step: int) -> None:
    """Tensors and numbers only: the model's and the optimizer's state."""
    torch.save({"model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "step": step}, path)


def load_checkpoint(path, model, optimizer, device) -> int:
    # weights_only=True: unpickles tensors and plain containers, never code
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["step"]


def whole_model_is_refused(model, path) -> bool:
    """Pickling the model object itself: weights_only=True won't load it."""
    torch.save(model, path)
    try:
        torch.load(path, weights_only=True)
    except Exception:  # pickle.UnpicklingError: the class is not allowed
        return True
    return False


def _trained(cfg, device, x, y, seed: int, steps: int):
    model = spiral_classifier(cfg, device, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for xb, yb in random_batches(x, y, cfg["batch"], steps, seed):
        train_step(model, optimizer, xb, yb)
    return model, optimizer


def checkpoint_roundtrip(device: str, size: str = "full") -> Result:
    """Save model + optimizer, load into fresh ones, compare, resume a step."""
    cfg, steps = SIZES[size], 20
    x, y = spirals_on(device, cfg["n_examples"])
    model, optimizer = _trained(cfg, device, x, y, seed=0, steps=steps)
    fresh, fresh_optimizer = _trained(cfg, device, x, y, seed=1, steps=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        save_checkpoint(path, model, optimizer, steps)
        step = load_checkpoint(path, fresh, fresh_optimizer, device)
        file_bytes = os.path.getsize(path)
        refused = whole_model_is_refused(model, os.path.join(tmp, "model.pt"))
    diff = (model(x) - fresh(x)).abs().max().item()
    train_step(model, optimizer, x, y), train_step(fresh, fresh_optimizer, x, y)
    resumed_diff = (model(x) - fresh(x)).abs().max().item()
    print(f"restored at step {step}: max |difference| {diff}; "
          f"after one more step each: {resumed_diff}")
    return Result(values={
        "max_abs_diff": diff, "identical": diff == 0.0, "step": step,
        "resumed_max_abs_diff": resumed_diff, "file_bytes": file_bytes,
        "whole_model_refused": refused})


# --- torch.compile: a one-off cost for faster calls ---

def gelu_by_hand(x):
    """GELU written out: eight elementwise ops."""
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1 + torch.tanh(inner))


def count_ops(fn) -> int:
    """How many operations ``fn`` performs on its input (a symbolic trace)."""
    graph = torch.fx.symbolic_trace(fn).graph
    return sum(node.op == "call_function" for node in graph.nodes)


def _gelu_input(device: str, size: str):
    # Big enough on a GPU that memory traffic, not kernel launches, sets the time.
    gpu = device.startswith("cuda") and size == "full"
    shape = (16384, 4096) if gpu else (4 * SIZES[size]["n_examples"], 256)
    torch.manual_seed(0)
    return torch.randn(shape, device=device)


def compile_cold(mode: str, device: str, size: str, first_calls: int = 3) -> dict:
    """In a fresh process: compile, the first calls (compiling, and recording the
    CUDA graph), then the steady state.  The on-disk caches are off: a cold start."""
    from torch._inductor import metrics
    torch._inductor.config.force_disable_caches = True
    x = _gelu_input(device, size)
    compiled = torch.compile(gelu_by_hand, mode=mode)
    _, first = once(lambda: [compiled(x) for _ in range(first_calls)], device)
    diff = (compiled(x) - gelu_by_hand(x)).abs().max().item()
    return {"first": first, "steady": measure(lambda: compiled(x), device),
            "kernels": metrics.generated_kernel_count, "max_abs_diff": diff}


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a new Python process: nothing compiled or cached before it."""
    with torch.multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def compile_speedup(device: str, size: str = "full") -> Result:
    """Eager vs torch.compile, each mode compiled cold in a process of its own."""
    x = _gelu_input(device, size)
    # CUDA graphs ("reduce-overhead") cut the launch cost of each call: GPUs only
    modes = ["default"] + (["reduce-overhead"] if device.startswith("cuda") else [])
    timings = {"eager": measure(lambda: gelu_by_hand(x), device)}
    cold = {mode: in_fresh_process(compile_cold, mode, device, size) for mode in modes}
    timings.update({mode: c["steady"] for mode, c in cold.items()})
    first_s = {mode: c["first"].median_s for mode, c in cold.items()}  # a single run each
    print(f"{x.numel():,} elements; first 3 calls, compiling, in a fresh process: "
          + ", ".join(f"{m} {s:.1f} s" for m, s in first_s.items()))
    return Result(
        values={"elements": x.numel(), "modes": modes, "eager_ops": count_ops(gelu_by_hand),
                "kernels": cold["default"]["kernels"], "first_calls": 3,
                "max_abs_diff": cold["default"]["max_abs_diff"],
                "reduce_overhead_timed": "reduce-overhead" in modes},
        measured={"compile_s": first_s["default"],
                  "compile_reduce_overhead_s": first_s.get("reduce-overhead")},
        timings=timings)


# --- The profiler: where does the time go? ---

def profile_training(model, optimizer, batches, device: str):
    """Profile training steps; on a GPU, its kernels too."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for x, y in batches:
            train_step(model, optimizer, x, y)
        synchronize(device)
    return prof.key_averages()


def top_ops(events, device: str, n: int = 6):
    """The ``n`` operators (not kernels) with the most self time."""
    gpu = device.startswith("cuda")
    ops = [e for e in events if e.key.startswith("aten::")]
    ops.sort(key=lambda e: e.self_device_time_total if gpu
             else e.self_cpu_time_total, reverse=True)
    return [(e.key.removeprefix("aten::"), e.count, e.self_cpu_time_total / 1e6,
             e.self_device_time_total / 1e6) for e in ops[:n]]


MATRIX_PRODUCTS = ("mm", "addmm", "bmm", "matmul", "linear")


def time_split(events) -> dict:
    """Self time of every operator: on the CPU, on the GPU, and the matrix products' share."""
    ops = [e for e in events if e.key.startswith("aten::")]
    cpu_s = sum(e.self_cpu_time_total for e in ops) / 1e6
    gpu_s = sum(e.self_device_time_total for e in ops) / 1e6
    clock = (lambda e: e.self_device_time_total) if gpu_s > 0 else (lambda e: e.self_cpu_time_total)
    products = sum(clock(e) for e in ops if e.key.removeprefix("aten::") in MATRIX_PRODUCTS)
    return {"self_cpu_s": cpu_s, "self_gpu_s": gpu_s,
            "matmul_share": products / max(sum(clock(e) for e in ops), 1e-12)}


def profile_top_ops(device: str, size: str = "full") -> Result:
    """Profile a few training steps and list the top operators by self time."""
    cfg, steps = SIZES[size], 10
    model = spiral_classifier(cfg, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = spirals_on(device, cfg["n_examples"])
    for xb, yb in random_batches(x, y, cfg["batch"], 3):  # warm-up
        train_step(model, optimizer, xb, yb)
    batches = list(random_batches(x, y, 8 * cfg["batch"], steps))
    events = profile_training(model, optimizer, batches, device)
    rows = top_ops(events, device)
    gpu = device.startswith("cuda")
    clock = "GPU" if gpu else "CPU"
    columns = ["operator (aten::)", "calls", "self CPU"] + (["self GPU"] if gpu else [])
    table = [[name, calls, f"{cpu_s * 1e3:.2f} ms"]
             + ([f"{gpu_s * 1e3:.2f} ms"] if gpu else [])
             for name, calls, cpu_s, gpu_s in rows]
    split = time_split(events)
    print(f"{len(rows)} operators with the most self {clock} time; top: {rows[0][0]}; "
          f"all operators: self CPU {split['self_cpu_s'] * 1e3:.1f} ms"
          + (f", self GPU {split['self_gpu_s'] * 1e3:.1f} ms" if gpu else "")
          + f"; matrix products {split['matmul_share']:.0%} of self {clock} time")
    return Result(
        values={"n_steps": steps, "clock": clock},
        measured={"top_op": rows[0][0], "top_op_calls": rows[0][1], **split,
                  "cpu_bound": gpu and split["self_cpu_s"] > split["self_gpu_s"]},
        tables=[Table(columns, table,
                      caption=f"Operators by self {clock} time, "
                              f"{steps} training steps")])


# --- When abstractions are bad: hidden state you forgot about ---

def train_adamw(x, y, cfg, device, zero_grad: bool) -> list[float]:
    """Same seed, data and optimizer; only ``zero_grad`` differs."""
    model = spiral_classifier(cfg, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    return [train_step(model, optimizer, xb, yb, zero_grad)
            for xb, yb in random_batches(x, y, cfg["batch"], cfg["steps"])]


def _plot_two_losses(correct, forgotten):
    fig = slide_figure(height=4.2)
    ax = fig.subplots()
    ax.plot(correct, lw=1.5, label="with zero_grad()")
    ax.plot(forgotten, lw=1.5, label="zero_grad() forgotten")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log)")
    ax.legend()
    ax.grid(alpha=0.3)
    legible(ax)
    return fig


def forgotten_zero_grad(device: str, size: str = "full") -> Result:
    """The same training with and without optimizer.zero_grad()."""
    cfg = SIZES[size]
    x, y = spirals_on(device, cfg["n_examples"])
    correct = train_adamw(x, y, cfg, device, zero_grad=True)
    forgotten = train_adamw(x, y, cfg, device, zero_grad=False)
    final_correct = mean_of_last(correct)
    final_forgotten = mean_of_last(forgotten)
    print(f"final loss with zero_grad() {final_correct:.3g}, "
          f"without {final_forgotten:.3g}")
    return Result(values={
        "final_loss_correct": final_correct,
        "final_loss_forgotten": final_forgotten,
        "loss_ratio": final_forgotten / final_correct,
        "initial_loss": correct[0], "n_steps": len(correct)},
        figures=[Figure(_plot_two_losses(correct, forgotten), alt=(
            "Training loss per step on a log scale for two runs that differ "
            "only in optimizer.zero_grad(). With it, the loss falls steadily. "
            "Without it, every gradient is added to all the earlier ones and "
            "the loss climbs far above where it started."))])


def mlp_with_dropout_and_batchnorm(width: int) -> nn.Sequential:
    """A plain chain, so nn.Sequential is enough; two kinds of hidden mode."""
    return nn.Sequential(
        nn.Linear(2, width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(width, 3))


def call_twice(model, x):
    """Same input, two calls: largest output difference, share of flips."""
    with torch.inference_mode():
        a, b = model(x), model(x)
    flipped = (a.argmax(1) != b.argmax(1)).float().mean().item()
    return (a - b).abs().max().item(), flipped


def test_accuracy(model, x, y, batch: int) -> float:
    """A test loop: batches in the order the test set is stored."""
    with torch.inference_mode():
        right = sum((model(xb).argmax(1) == yb).sum().item()
                    for xb, yb in zip(x.split(batch), y.split(batch)))
    return right / len(y)


def evaluate(model, x, y, batch: int) -> dict:
    """What a test loop reports, and whether calling twice agrees."""
    max_diff, flipped = call_twice(model, x)
    return {"max_diff": max_diff, "flipped": flipped,
            "accuracy": test_accuracy(model, x, y, batch)}


def forgotten_eval(device: str, size: str = "full") -> Result:
    """Dropout + BatchNorm evaluated in eval mode, then in train mode."""
    cfg = SIZES[size]
    torch.manual_seed(0)
    model = mlp_with_dropout_and_batchnorm(2 * cfg["width"]).to(device)
    x, y = spirals_on(device, cfg["n_examples"])
    train_one_cycle(model, x, y, cfg["batch"], cfg["steps"], max_lr=1e-2)
    x_test, y_test = spirals_on(device, 1024, seed=1)
    by_class = y_test.argsort(stable=True)  # a test set stored class by class
    x_test, y_test = x_test[by_class], y_test[by_class]
    results = {"eval": evaluate(model.eval(), x_test, y_test, cfg["batch"])}
    running_mean = model[1].running_mean.clone()
    results["train"] = evaluate(model.train(), x_test, y_test, cfg["batch"])  # forgot .eval()
    shuffled = torch.randperm(len(y_test), generator=torch.Generator().manual_seed(0)).to(device)
    mixed_batches = test_accuracy(model, x_test[shuffled], y_test[shuffled], cfg["batch"])
    for mode, r in results.items():
        print(f"{mode:5s} mode: two calls differ by {r['max_diff']:.3g}, "
              f"{r['flipped']:.1%} of labels flip, "
              f"accuracy {r['accuracy']:.1%}")
    values = {f"{mode}_mode_{key}": value
              for mode, r in results.items() for key, value in r.items()}
    values["running_stats_changed"] = not torch.equal(
        running_mean, model[1].running_mean)  # evaluating changed the model
    values["test_batch"] = cfg["batch"]
    values["train_mode_shuffled_accuracy"] = mixed_batches  # the same mistake, batches of mixed classes
    return Result(values=values)


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
