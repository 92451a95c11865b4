"""Part #2 of the talk: "Basics: fantastic gradients and where to find them".

The same two-layer network is trained twice on a 2-D "two moons" data set made
here in code: once in NumPy with backprop written by hand, once in torch where
autograd writes the backward pass.  From the same initial weights both give the
same gradients (to rounding) and the same loss curve: the only differences are
that the gradients come for free and the tensors can live on a GPU.  Then: how
the speed of one training step grows with the network, and the ways torch lets
you look at (and change) any gradient -- the one thing a framework must never
hide from you.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import NullFormatter

from deck.result import Figure, Result, Table, format_seconds
from demos._figures import DIVERGING, PALETTE, PYTORCH, legible, plain_log_ticks, slide_figure
from demos._timing import measure, one_thread

SIZES = {
    "small": dict(points=200, hidden=16, steps=300, lr=1.0,
                  widths=[32, 64, 128], cpu_widths=[32, 64, 128]),
    # A GPU leaves its fixed per-step cost only at widths the CPU would need minutes for.
    "full": dict(points=1000, hidden=16, steps=2000, lr=1.0,
                 widths=[32, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
                 cpu_widths=[32, 64, 128, 256, 512, 1024]),
}
COLORS = {"numpy": PALETTE[0], "torch": PYTORCH, "device": PALETTE[2]}


# --- the data and the weights: plain NumPy, shared by both versions ---

def two_moons(points: int, noise: float = 0.15, seed: int = 0):
    """Two interleaving half circles in 2-D; labels 0 and 1 (no download)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, points)
    t = rng.uniform(0, np.pi, points)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t)) - 0.5
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t)) - 0.25
    X = np.stack([x, y], axis=1) + noise * rng.normal(size=(points, 2))
    return X, label.astype(np.float64)


def init_params(inputs: int, hidden: int, seed: int = 0) -> list[np.ndarray]:
    """Random weights W1, b1, W2, b2 of an inputs -> hidden -> 1 network."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1 / np.sqrt(inputs), (inputs, hidden)),
            np.zeros(hidden),
            rng.normal(0, 1 / np.sqrt(hidden), hidden),
            np.zeros(1)]


def numpy_to_torch(arrays, device: str, dtype=torch.float64,
                   requires_grad: bool = False) -> list[torch.Tensor]:
    """Copy NumPy arrays to torch tensors on `device` (a GPU is a string)."""
    return [torch.tensor(a, dtype=dtype, device=device,
                         requires_grad=requires_grad) for a in arrays]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# --- the same network twice: the slide shows these two side by side ---

def numpy_forward_backward(params, X, y):
    W1, b1, W2, b2 = params
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    loss = np.mean(np.logaddexp(0, logits) - y * logits)
    d_logits = (sigmoid(logits) - y) / len(y)  # backward: by hand
    d_W2 = h.T @ d_logits
    d_b2 = d_logits.sum(keepdims=True)
    d_z = np.outer(d_logits, W2) * (1 - h**2)
    d_W1 = X.T @ d_z
    d_b1 = d_z.sum(axis=0)
    return loss, [d_W1, d_b1, d_W2, d_b2]


def torch_forward_backward(params, X, y):
    """Loss and gradients in torch: autograd."""
    W1, b1, W2, b2 = params
    h = torch.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    loss = F.binary_cross_entropy_with_logits(logits, y)
    # backward: autograd applies the chain rule
    grads = torch.autograd.grad(loss, params)
    return loss, grads


def numpy_training_step(params, X, y, lr: float) -> float:
    """One step of gradient descent, in place."""
    loss, grads = numpy_forward_backward(params, X, y)
    for p, g in zip(params, grads):
        p -= lr * g
    return float(loss)


def torch_training_step(params, X, y, lr: float) -> float:
    """One step of gradient descent, in place."""
    loss, grads = torch_forward_backward(params, X, y)
    with torch.no_grad():  # the update is not part of the model
        for p, g in zip(params, grads):
            p -= lr * g
    return loss.item()


def train(step, params, X, y, steps: int, lr: float) -> list[float]:
    """Run `step` (the NumPy or the torch one) `steps` times; the losses."""
    return [step(params, X, y, lr) for _ in range(steps)]


def max_difference(numpy_arrays, tensors) -> float:
    """Largest absolute difference between NumPy arrays and torch tensors."""
    return max(float(np.max(np.abs(a - t.detach().cpu().numpy())))
               for a, t in zip(numpy_arrays, tensors))


def _dtype(device: str):
    # float64, so NumPy and torch differ only by rounding (~1e-16). MPS has
    # no float64: there the comparison is float32 (differences ~1e-7).
    return torch.float32 if device.startswith("mps") else torch.float64


def _predict_numpy(params, X):
    W1, b1, W2, b2 = params
    return np.tanh(X @ W1 + b1) @ W2 + b2


def _plot_losses(numpy_losses, torch_losses) -> MplFigure:
    fig = slide_figure(height=4.4)
    ax = fig.subplots()
    ax.plot(numpy_losses, color=COLORS["numpy"], lw=6, alpha=0.6,
            label="NumPy, backprop by hand")
    ax.plot(torch_losses, color=COLORS["torch"], lw=2, ls="--",
            label="torch, autograd")
    ax.set(xlabel="training step", ylabel="loss (cross-entropy)",
           yscale="log")
    plain_log_ticks(ax.yaxis)
    ax.legend()
    legible(ax)
    return fig


def _plot_moons(ax, X, labels) -> None:
    for cls, marker, color in ((0, "o", COLORS["numpy"]),
                               (1, "s", COLORS["torch"])):
        pts = X[labels == cls]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, marker=marker, color=color,
                   edgecolor="black", linewidth=0.3, label=f"class {cls}")


def _grid(X, steps: int = 80):
    lo, hi = X.min(axis=0) - 0.4, X.max(axis=0) + 0.4
    xs, ys = np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], axis=1)


def _draw_boundary(ax, params, X) -> None:
    gx, gy, points = _grid(X)
    prob = sigmoid(_predict_numpy(params, points)).reshape(gx.shape)
    ax.contourf(gx, gy, prob, levels=10, cmap=DIVERGING, alpha=0.25)
    ax.contour(gx, gy, prob, levels=[0.5], colors="black", linewidths=2)


def _finish_plane(ax) -> None:
    ax.set(xlabel="x₁", ylabel="x₂", aspect="equal")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    legible(ax)


def _plot_boundary(params, X, labels) -> MplFigure:
    fig = slide_figure(height=4.9)
    ax = fig.subplots()
    _draw_boundary(ax, params, X)
    _plot_moons(ax, X, labels)
    _finish_plane(ax)
    return fig


def numpy_vs_torch(device: str, size: str = "full") -> Result:
    """Train the same network in NumPy and in torch from the same weights."""
    cfg = SIZES[size]
    X, y = two_moons(cfg["points"])
    numpy_params = init_params(2, cfg["hidden"])
    # Same initial weights in torch (a copy), in float64: the gradients
    # can then differ only by rounding (~1e-16), not by float32 noise.
    dtype = _dtype(device)
    torch_params = numpy_to_torch(numpy_params, device, dtype, True)
    X_t, y_t = numpy_to_torch([X, y], device, dtype)

    _, numpy_grads = numpy_forward_backward(numpy_params, X, y)
    _, torch_grads = torch_forward_backward(torch_params, X_t, y_t)
    grad_diff = max_difference(numpy_grads, torch_grads)

    with one_thread():
        numpy_losses = train(numpy_training_step, numpy_params, X, y,
                             cfg["steps"], cfg["lr"])
        torch_losses = train(torch_training_step, torch_params, X_t, y_t,
                             cfg["steps"], cfg["lr"])
    loss_diff = float(np.max(np.abs(np.subtract(numpy_losses, torch_losses))))
    weight_diff = max_difference(numpy_params, torch_params)
    accuracy = float(np.mean((_predict_numpy(numpy_params, X) > 0) == y))

    print(f"max |gradient difference| at the same weights: {grad_diff:.1e}")
    print(f"loss after {cfg['steps']} steps: NumPy {numpy_losses[-1]:.4f}, "
          f"torch {torch_losses[-1]:.4f} (max curve difference "
          f"{loss_diff:.1e})")
    print(f"training accuracy: {accuracy:.1%}")
    return Result(
        values=dict(max_grad_diff=grad_diff, max_loss_diff=loss_diff,
                    max_weight_diff=weight_diff,
                    initial_loss=numpy_losses[0],
                    numpy_final_loss=numpy_losses[-1],
                    torch_final_loss=torch_losses[-1],
                    accuracy=accuracy, steps=cfg["steps"],
                    points=cfg["points"], hidden=cfg["hidden"],
                    dtype=str(dtype).replace("torch.", "")),
        figures=[
            Figure(_plot_losses(numpy_losses, torch_losses),
                   alt="Training loss against step on a log scale for the "
                       "NumPy network and the torch network. The two curves "
                       "fall together and lie exactly on top of each other."),
            Figure(_plot_boundary(numpy_params, X, y),
                   alt="The two moons data set, two interleaving half "
                       "circles of points in two classes, with the trained "
                       "network's decision boundary as a black curve that "
                       "winds between the two moons and separates them."),
        ])


# --- speed: the same training step, made wider ---

def wide_problem(width: int, seed: int = 0):
    """Data and weights for a step with batch = inputs = hidden = width."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(width, width)).astype(np.float32)
    y = (rng.random(width) > 0.5).astype(np.float32)
    params = [p.astype(np.float32) for p in init_params(width, width, seed)]
    return X, y, params


def time_training_steps(width: int, device: str, on_cpu: bool) -> dict:
    """Seconds per training step: NumPy and torch on the CPU (if `on_cpu`), torch on `device`."""
    X, y, params = wide_problem(width)
    lr = 1e-3
    timings = {}
    if on_cpu:
        timings["numpy"] = measure(lambda: numpy_training_step(params, X, y, lr), "cpu")
    for name, dev in [("torch cpu", "cpu"), (f"torch {device}", device)]:
        if name in timings or (dev == "cpu" and not on_cpu):
            continue
        X_t, y_t = numpy_to_torch([X, y], dev, torch.float32)
        p_t = numpy_to_torch(params, dev, torch.float32, requires_grad=True)
        timings[name] = measure(
            lambda: torch_training_step(p_t, X_t, y_t, lr), dev)
    return timings


def _accelerator_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _device_note(device: str) -> str:
    if device != "cpu":
        return f"The third line is torch on {_accelerator_name(device)}."
    if torch.cuda.is_available():
        return "This build ran on the CPU only: the GPU was not timed."
    return "No GPU was available for this build: only the CPU was timed."


def _busy_cpu_note() -> str:
    # Other programs running while we time make the CPU numbers jump around.
    if not hasattr(os, "getloadavg"):
        return ""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores:
        return ""
    return (f"Other work kept the CPU busy while timing (load {load:.1f} on "
            f"{cores} cores), so the CPU times are noisy.")


def _plot_speed(widths, seconds: dict) -> MplFigure:
    fig = slide_figure(height=4.2)
    ax = fig.subplots()
    styles = [(COLORS["numpy"], "o", "-"), (COLORS["torch"], "s", "--"),
              (COLORS["device"], "^", ":")]
    for (name, secs), (color, marker, ls) in zip(seconds.items(), styles):
        ax.plot(widths[:len(secs)], secs, color=color, marker=marker, ls=ls, lw=2.5,
                markersize=8, label=name)
    ax.set(xscale="log", yscale="log", ylabel="seconds per training step",
           xlabel="width n (batch = inputs = hidden units = n)")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    plain_log_ticks(ax.yaxis)
    ax.legend()
    legible(ax)
    return fig


def matmul_precision(device: str) -> str:
    """How float32 matrix products ran: full float32, or TF32 on CUDA's tensor cores."""
    tf32 = device.startswith("cuda") and torch.backends.cuda.matmul.allow_tf32
    return f"float32 (precision {torch.get_float32_matmul_precision()!r}, TF32 {'on' if tf32 else 'off'})"


def flat_until(widths, seconds, factor: float = 2.0) -> int:
    """The largest width up to which a line stays within `factor` of its first point."""
    flat = widths[0]
    for width, secs in zip(widths, seconds):
        if secs >= factor * seconds[0]:
            break
        flat = width
    return flat


def speed_by_size(device: str, size: str = "full") -> Result:
    """Time one training step as the network grows: NumPy vs torch."""
    widths, cpu_widths = SIZES[size]["widths"], SIZES[size]["cpu_widths"]
    if device == "cpu":
        widths = cpu_widths
    busy_note = _busy_cpu_note()  # before our own timing adds to the load
    per_width = [time_training_steps(w, device, w in cpu_widths) for w in widths]
    names = list(per_width[0])
    seconds = {n: [t[n].median_s for t in per_width if n in t] for n in names}
    note = _device_note(device)
    print(f"one training step, widths {widths[0]} to {widths[-1]}:")
    for name in names:
        print(f"  {name}: {format_seconds(seconds[name][0])} to "
              f"{format_seconds(seconds[name][-1])}")
    print(note, busy_note)
    alt = ("Log-log plot of seconds per training step against network "
           f"width n, one line each for {', '.join(names)}, at their largest width: "
           + ", ".join(f"{n} {format_seconds(secs[-1])}" for n, secs in seconds.items()) + ".")
    return Result(
        values=dict(widths=widths, gpu_available=device != "cpu",
                    device_note=note, largest_width=widths[-1],
                    cpu_largest_width=cpu_widths[-1], smallest_width=widths[0],
                    device_line=names[-1], precision=matmul_precision(device)),
        measured=dict(busy_note=busy_note,
                      device_flat_until=flat_until(widths, seconds[names[-1]])),
        tables=[Table(["width n"] + names,
                      [[w] + [format_seconds(t[n].median_s) if n in t else "–" for n in names]
                       for w, t in zip(widths, per_width)],
                      "Seconds per training step (median)")],
        figures=[Figure(_plot_speed(widths, seconds), alt=alt)],
        timings={f"{n} @ {w}": t[n] for w, t in zip(widths, per_width)
                 for n in t})


# --- gradients are not hidden ---

def torch_logits(params, X):
    """The network's forward pass (the same as above), in torch."""
    W1, b1, W2, b2 = params
    return torch.tanh(X @ W1 + b1) @ W2 + b2


def look_at_gradients(params, X, y):
    """A gradient is a tensor: read it, ask for it, watch it."""
    seen = []  # a hook on W1 records each gradient that flows by
    hook = params[0].register_hook(seen.append)
    X = X.clone().requires_grad_()
    logits = torch_logits(params, X)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    # any gradient you ask for: here w.r.t. the input
    d_X, = torch.autograd.grad(loss, X, retain_graph=True)
    loss.backward()  # fills .grad of every parameter
    hook.remove()
    return params[0].grad, seen[0], d_X


def clip_with_hook(params, X, y, limit: float):
    """A hook can also change a gradient: here, clip it."""
    hook = params[0].register_hook(lambda g: g.clamp(-limit, limit))
    logits = torch_logits(params, X)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    loss.backward()
    hook.remove()
    return params[0].grad


def check_gradients(params, X, y) -> bool:
    """gradcheck: autograd against finite differences (needs float64)."""
    def loss(*params):
        logits = torch_logits(params, X)
        return F.binary_cross_entropy_with_logits(logits, y)
    return torch.autograd.gradcheck(loss, tuple(params))


def _plot_input_gradients(params, X, labels) -> MplFigure:
    gx, gy, points = _grid(X, steps=15)
    P = torch.tensor(points, requires_grad=True)
    cpu_params = [p.detach().cpu().double() for p in params]
    d_P, = torch.autograd.grad(torch_logits(cpu_params, P).sum(), P)
    fig = slide_figure(height=4.9)
    ax = fig.subplots()
    _draw_boundary(ax, [p.numpy() for p in cpu_params], X)
    _plot_moons(ax, X, labels)
    ax.quiver(points[:, 0], points[:, 1], d_P[:, 0], d_P[:, 1],
              color="black", angles="xy", width=0.004)
    _finish_plane(ax)
    return fig


def _hook_and_clip(params, X, y) -> dict:
    grad, hooked, d_X = look_at_gradients(params, X, y)
    for p in params:
        p.grad = None
    limit = 0.5 * grad.abs().max().item()
    clipped = clip_with_hook(params, X, y, limit)
    return dict(grad=grad, hook_ok=torch.equal(grad, hooked),
                hook_norm=hooked.norm().item(), d_X=d_X, limit=limit,
                clip_ok=torch.equal(clipped, grad.clamp(-limit, limit)))


def gradients_are_not_hidden(device: str, size: str = "full") -> Result:
    """.grad, autograd.grad w.r.t. the input, hooks and gradcheck."""
    cfg = SIZES[size]
    X, y = two_moons(cfg["points"])
    dtype = _dtype(device)
    params = numpy_to_torch(init_params(2, cfg["hidden"]), device, dtype, True)
    X_t, y_t = numpy_to_torch([X, y], device, dtype)
    # gradcheck needs float64: on MPS (no float64) it runs on the CPU.
    check_on = "cpu" if device.startswith("mps") else device
    X_few, y_few = numpy_to_torch([X[:20], y[:20]], check_on)
    with one_thread():
        train(torch_training_step, params, X_t, y_t, cfg["steps"], cfg["lr"])
        found = _hook_and_clip(params, X_t, y_t)
        params64 = [p.detach().to(check_on, torch.float64).requires_grad_()
                    for p in params]
        gradcheck_ok = bool(check_gradients(params64, X_few, y_few))
        figure = _plot_input_gradients(params, X, y)
    grad, d_X = found["grad"], found["d_X"]

    print(f"W1.grad after backward(): shape {tuple(grad.shape)}, "
          f"norm {grad.norm().item():.4f}")
    print(f"the hook saw the same gradient: {found['hook_ok']}")
    print(f"gradient w.r.t. the input (saliency): shape {tuple(d_X.shape)}")
    print(f"a hook clipped W1's gradient to ±{found['limit']:.2g}: "
          f"{found['clip_ok']}")
    print(f"gradcheck (float64, finite differences): {gradcheck_ok}")
    return Result(
        values=dict(grad_norm=grad.norm().item(), hook_norm=found["hook_norm"],
                    hook_matches_grad=found["hook_ok"],
                    hook_clips=found["clip_ok"],
                    input_grad_shape=list(d_X.shape),
                    gradcheck_ok=gradcheck_ok),
        figures=[Figure(figure,
                        alt="The two moons data set with a grid of arrows: "
                            "the gradient of the network's output with "
                            "respect to the input point. The arrows are "
                            "longest near the boundary between the moons "
                            "and point from class 0 towards class 1.")])


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
