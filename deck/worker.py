"""The worker process: the only place torch and the demos are imported.

The builder starts ``python -m deck.worker DEVICE`` in its own process group and
talks to it in JSON lines: one request per demo on stdin, one reply on the
original stdout.  While a demo runs, file descriptors 1 and 2 point at files,
so everything it prints (from Python or from C++) is captured, and a demo that
prints without end fills a file, not the builder's memory.
"""
from __future__ import annotations

import datetime
import importlib
import io
import json
import numbers
import os
import platform
import re
import sys
import time
import traceback

OUTPUT_CAP_BYTES = 64 * 1024


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    requested = sys.argv[1] if len(sys.argv) > 1 else "auto"
    import matplotlib
    matplotlib.use("Agg")
    import torch
    device = resolve_device(requested, torch)
    reply(replies, {"ready": True, "device": device, "device_name": device_name(device, torch),
                    "torch": torch.__version__, "python": platform.python_version()})
    for line in sys.stdin:
        reply(replies, run(json.loads(line), device))


def reply(stream, message: dict) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def resolve_device(requested: str, torch) -> str:
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch build sees no CUDA device "
                         f"(torch {torch.__version__}, cuda {torch.version.cuda})")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SystemExit("--device mps: MPS is not available on this machine")
    return requested


def device_name(device: str, torch) -> str:
    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name()})"
    if device == "mps":
        return "mps (Apple GPU)"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu ({model}, {os.cpu_count()} cores)"


def run(request: dict, device: str) -> dict:
    """Run one demo with its output captured; return a JSON-ready reply."""
    module_name, function_name = request["demo"].rsplit(".", 1)
    started = time.perf_counter()
    with captured(request["output_path"]):
        try:
            module = importlib.import_module(f"demos.{module_name}")
            function = getattr(module, function_name)
            returned = function(device, request["size"], **request["args"])
            result = to_json(returned, request["demo"])
            error = None
        except BaseException as exception:  # a demo's failure is data for the report
            if isinstance(exception, KeyboardInterrupt):
                raise
            error = "".join(traceback.format_exception(exception)[1:]) if isinstance(exception, UnsupportedResult) \
                else demo_traceback(exception)
            result = None
    seconds = time.perf_counter() - started
    import matplotlib.pyplot as plt
    plt.close("all")
    text, total = read_capped(request["output_path"], request.get("output_cap", OUTPUT_CAP_BYTES))
    if error:
        return {"ok": False, "error": error, "output": text[-4000:]}
    result.update(output=text, output_bytes=total, truncated=total > len(text.encode()),
                  seconds=seconds, ran_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return {"ok": True, "result": result}


class captured:
    """Point fds 1 and 2 at a file for the duration of a demo."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        sys.stdout.flush(), sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        target = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, 1), os.dup2(target, 2)
        os.close(target)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(self.saved[0], 1), os.dup2(self.saved[1], 2)
        os.close(self.saved[0]), os.close(self.saved[1])
        return False


def read_capped(path: str, cap: int) -> tuple[str, int]:
    total = os.path.getsize(path)
    with open(path, "rb") as stream:
        head = stream.read(cap)
    return head.decode("utf-8", errors="replace"), total


def demo_traceback(exception: BaseException) -> str:
    """The traceback from the demo's own frames on (the worker's frames say nothing)."""
    frames = traceback.extract_tb(exception.__traceback__)
    demo_frames = [f for f in frames if "/demos/" in f.filename.replace("\\", "/")]
    skip = frames.index(demo_frames[0]) if demo_frames else 0
    tb = exception.__traceback__
    for _ in range(skip):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exception), exception, tb))


class UnsupportedResult(TypeError):
    pass


def to_json(returned, demo: str) -> dict:
    from demos._results import Figure, Result, Table, Timing
    if returned is None:
        returned = Result()
    if not isinstance(returned, Result):
        raise UnsupportedResult(f"demo {demo} returned a {type(returned).__module__}.{type(returned).__qualname__}; "
                                "a demo returns demos._results.Result (or None)")
    values = {name: plain(value, f"values[{name!r}]", demo)
              for name, value in {**returned.values, **returned.measured}.items()}
    for what, items, kind in (("tables", returned.tables, Table), ("figures", returned.figures, Figure)):
        for item in items:
            if not isinstance(item, kind):
                raise UnsupportedResult(f"demo {demo}: {what} holds a {type(item).__qualname__}, not a {kind.__name__}")
    for name, timing in returned.timings.items():
        if not isinstance(timing, Timing):
            raise UnsupportedResult(f"demo {demo}: timings[{name!r}] is a {type(timing).__qualname__}, not a Timing "
                                    "(use demos._timing.measure)")
    return {
        "values": values,
        "tables": [{"columns": [str(c) for c in t.columns], "rows": [[cell(v) for v in row] for row in t.rows],
                    "caption": t.caption} for t in returned.tables],
        "figures": [{"svg": svg(f.figure, f"{demo}-{i}", f.alt), "alt": f.alt}
                    for i, f in enumerate(returned.figures)],
        "timings": {name: {"median_s": t.median_s, "iqr_s": t.iqr_s, "repeats": t.repeats, "device": t.device}
                    for name, t in returned.timings.items()},
    }


def plain(value, where: str, demo: str):
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]", demo) for i, v in enumerate(value)]
    raise UnsupportedResult(f"demo {demo}: {where} is a {type(value).__module__}.{type(value).__qualname__}; "
                            "values must be numbers, strings, booleans or lists of them (use .item() on a tensor)")


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def svg(figure, prefix: str, alt: str) -> str:
    """The figure as inline SVG: ids made unique per figure, alt text as its accessible name."""
    import matplotlib
    from html import escape
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": prefix, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", prefix)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{slug}-{m.group(1)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{slug}-{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{slug}-{m.group(1)}"', text)
    text = text.replace("<svg ", f'<svg role="img" aria-label="{escape(alt)}" ', 1)
    return text


if __name__ == "__main__":
    main()
