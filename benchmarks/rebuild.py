"""How long a presenter waits: cold build, warm rebuild, prose edit, one demo edited.

    python benchmarks/rebuild.py            # warm cases, on a copy of the talk with its cache
    python benchmarks/rebuild.py --cold     # also a cold build of the whole talk (minutes)

Works on a temporary copy of slides/, demos/ and the build cache, so the real talk is untouched.
Each warm case is run several times; the median and the range are printed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build(root: Path, *args: str) -> tuple[float, list[str]]:
    """(wall seconds, demos that ran) for one `python build.py` as a presenter types it."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "build.py"), "--root", str(root), *args],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return seconds, re.findall(r"\[\d+/\d+\] (\S+) \.\.\.", done.stderr)


def report(name: str, runs: list[tuple[float, list[str]]]) -> None:
    times = [t for t, _ in runs]
    reran = sorted({demo for _, demos in runs for demo in demos})
    print(f"{name:<34} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f}, "
          f"n={len(times)})  demos rerun: {', '.join(reran) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="also time a cold build (empty cache)")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deck-bench-") as scratch:
        root = Path(scratch) / "talk"
        root.mkdir()
        for name in ("slides", "demos"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        if options.cold:
            report("cold build (empty cache)", [build(root)])
        elif (REPO / ".cache" / "deck").is_dir():
            shutil.copytree(REPO / ".cache" / "deck", root / ".cache" / "deck")
        build(root)  # make sure everything is cached and rendered once
        report("rebuild, nothing changed", [build(root) for _ in range(options.repeats)])
        slide = sorted((root / "slides").glob("*.md"))[len(list((root / "slides").glob("*.md"))) // 2]
        prose = []
        for i in range(options.repeats):
            slide.write_text(slide.read_text().replace("Note:\n", f"Note:\nEdited prose {i}.\n", 1))
            prose.append(build(root))
        report(f"rebuild after editing {slide.name}", prose)
        demo = root / "demos" / "crazy.py"
        demo.write_text(demo.read_text() + "\n# an edit\n")
        report("rebuild after editing demos/crazy.py", [build(root)])


if __name__ == "__main__":
    main()
