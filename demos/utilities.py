"""Part #3 of the talk: utilities, measured on the device instead of recommended.

Mixed precision (``torch.autocast`` to bfloat16), TF32 matrix products on CUDA,
and DataLoader worker processes (with pinned memory on CUDA).  Each helps only
where the hardware and the workload let it: the demos time them here, and the
slide says what happened.
"""
from __future__ import annotations

import contextlib
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deck.result import Result
from demos._timing import measure

SIZES = {  # batch and width of the MLP block; examples and image side for the loader
    "small": dict(batch=64, width=256, examples=64, side=32),
    "full": dict(batch=512, width=1024, examples=512, side=64),
}
GPU_SIZES = dict(batch=8192, width=4096)


# --- mixed precision and TF32 ---

def mlp_block(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))


def predict(model, x):
    with torch.inference_mode():
        return model(x)


def predict_bf16(model, x):
    """The same call; autocast runs the matrix products in bfloat16."""
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16):
        return model(x)


@contextlib.contextmanager
def tf32_matmuls():
    """float32 matrix products on CUDA's tensor cores, in TF32 (10-bit mantissa)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def relative_error(approx, exact) -> float:
    return ((approx.float() - exact).norm() / exact.norm()).item()


def mixed_precision(device: str, size: str = "full") -> Result:
    """An MLP block in float32, under bf16 autocast, and (CUDA) with TF32 matmuls."""
    cfg = GPU_SIZES if device.startswith("cuda") and size == "full" else SIZES[size]
    torch.manual_seed(0)
    model = mlp_block(cfg["width"]).to(device)
    x = torch.randn(cfg["batch"], cfg["width"], device=device)
    exact = predict(model, x)
    timings = {"float32": measure(lambda: predict(model, x), device),
               "bf16 autocast": measure(lambda: predict_bf16(model, x), device)}
    errors = {"bf16 autocast": relative_error(predict_bf16(model, x), exact)}
    if device.startswith("cuda"):
        with tf32_matmuls():
            timings["tf32"] = measure(lambda: predict(model, x), device)
            errors["tf32"] = relative_error(predict(model, x), exact)
    for name, timing in timings.items():
        print(f"{name:14s} {timing}" + (f", relative error {errors[name]:.1e}" if name in errors else ""))
    return Result(
        values={"batch": cfg["batch"], "width": cfg["width"], "tf32_timed": "tf32" in timings,
                "precision": torch.get_float32_matmul_precision()},
        measured={"bf16_error": errors["bf16 autocast"], "tf32_error": errors.get("tf32")},
        timings=timings)


# --- DataLoader workers ---

class AugmentedImages(Dataset):
    """Each example costs work to make: a random image, cropped, flipped, normalised."""

    def __init__(self, n: int, side: int):
        self.n, self.side = n, side

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        image = torch.rand(3, self.side + 8, self.side + 8, generator=g)
        top, left = torch.randint(0, 8, (2,), generator=g).tolist()
        crop = image[:, top:top + self.side, left:left + self.side]
        if i % 2:
            crop = crop.flip(2)
        return (crop - crop.mean()) / crop.std(), i % 10


def epoch(loader, device: str) -> int:
    """One pass over the loader, each batch moved to the device."""
    seen = 0
    for images, labels in loader:
        images = images.to(device, non_blocking=loader.pin_memory)
        seen += len(labels)
    return seen


def loader_workers(device: str, size: str = "full") -> Result:
    """An epoch with num_workers=0 and 2 (and pinned memory on CUDA), start-up included."""
    cfg = SIZES[size]
    dataset = AugmentedImages(cfg["examples"], cfg["side"])
    settings = {"workers 0": dict(num_workers=0), "workers 2": dict(num_workers=2)}
    if device.startswith("cuda"):
        settings["workers 2, pinned"] = dict(num_workers=2, pin_memory=True)
    timings = {}
    for name, options in settings.items():
        loader = DataLoader(dataset, batch_size=32, **options)
        timings[name] = measure(lambda: epoch(loader, device), device, repeats=5, min_run_time=0.5)
        print(f"{name:18s} {timings[name]} per epoch")
    return Result(values={"examples": cfg["examples"], "side": cfg["side"], "batch_size": 32,
                          "cores": os.cpu_count(), "settings": list(settings)},
                  timings=timings)


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
