"""Part #2 of the talk, first: the tensor, torch's one data structure.

A tensor has a shape, a dtype and a device.  Arithmetic broadcasts (a size of
1 stretches to match), many operations return a *view* that shares memory with
the tensor it came from, ``torch.from_numpy`` shares memory with the NumPy array,
and ``.to(device)`` copies a tensor to another device.
"""
from __future__ import annotations

import numpy as np
import torch

from deck.result import Result


def shapes_and_broadcasting():
    """Broadcasting: a size of 1 stretches to match."""
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    column = torch.tensor([[10.0], [20.0]])  # shape (2, 1)
    y = x + column                           # (2, 3) + (2, 1) -> (2, 3)
    return x, column, y


def views_share_memory():
    """A view: the same memory in another shape."""
    x = torch.arange(6).reshape(2, 3)
    v = x.view(3, 2)   # no copy
    v[0, 0] = 100      # writes into x too
    t = x.t()          # a view as well, with swapped strides: not contiguous
    r = t.reshape(6)   # t.view(6) would raise; reshape copies instead
    return x, v, t, r


def numpy_shares_memory():
    """from_numpy: the array's memory, not a copy."""
    a = np.zeros(3)
    t = torch.from_numpy(a)
    a[0] = 7           # edit the array ...
    return a, t        # ... and the tensor has changed too


def default_device() -> str:
    """The accelerator (CUDA, MPS, ...) if there is one."""
    if torch.accelerator.is_available():
        return torch.accelerator.current_accelerator().type
    return "cpu"


def view_fails(t) -> bool:
    try:
        t.view(-1)
    except RuntimeError:  # "view size is not compatible with input tensor's size and stride"
        return True
    return False


def tensor_basics(device: str, size: str = "full") -> Result:
    """Shapes, dtypes, broadcasting, views, NumPy's memory, devices: what ran."""
    x, column, y = shapes_and_broadcasting()
    print(f"x {tuple(x.shape)} {x.dtype} + column {tuple(column.shape)} -> {tuple(y.shape)}")
    print(y)
    xs, v, t, r = views_share_memory()
    print(f"after v[0, 0] = 100: x[0, 0] = {xs[0, 0].item()}; "
          f"t contiguous: {t.is_contiguous()}; reshape copied: {r.data_ptr() != xs.data_ptr()}")
    a, from_numpy = numpy_shares_memory()
    print(f"a = {a}, torch.from_numpy(a) = {from_numpy}")
    moved = y.to(device)
    print(f"default_device() here: {default_device()}; y.to({device!r}) is on {moved.device}")
    return Result(values={
        "x_shape": list(x.shape), "x_dtype": str(x.dtype).removeprefix("torch."),
        "column_shape": list(column.shape), "sum_shape": list(y.shape), "sum": y.tolist(),
        "view_shares_storage": v.data_ptr() == xs.data_ptr(), "x_after_view_write": xs[0, 0].item(),
        "transpose_contiguous": t.is_contiguous(), "transpose_view_fails": view_fails(t),
        "reshape_copied": r.data_ptr() != xs.data_ptr(),
        "numpy_after_edit": a.tolist(), "tensor_after_edit": from_numpy.tolist(),
        "numpy_dtype": str(from_numpy.dtype).removeprefix("torch."),
        "default_device": default_device(), "moved_to": str(moved.device),
        "to_same_device_is_no_copy": x.to(x.device) is x})


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
