"""How long a presenter waits with `serve`: from saving a slide to the new text painted in the open deck.

    python benchmarks/serve_latency.py                                   # the talk's own cache, if built
    python benchmarks/serve_latency.py --results results/h200-cuda.tar   # or results from an archive

Serves a temporary copy of the talk (slides/, demos/, pyproject.toml and the build cache), opens it in
headless Chromium, and edits the prose of one slide again and again. The page stamps the frame in which
the new text first appears (a MutationObserver, then requestAnimationFrame) with the wall clock; the
edit is stamped just before the file is written. Prints the median and the 95th percentile, the first
edit on its own (the file watcher's first event), and how many times the page was loaded (once: every
edit is patched in place).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deck.browser import chromium  # noqa: E402

# A promise (in an object: Playwright would wait for a promise returned bare) of the wall-clock time, in
# ms, of the first frame whose document shows the text.
PAINTED = """text => ({painted: new Promise(resolve => {
  const seen = () => document.querySelector('.reveal .slides').textContent.includes(text);
  const stamp = () => requestAnimationFrame(() => resolve(Date.now()));
  if (seen()) return stamp();
  const watcher = new MutationObserver(() => { if (seen()) { watcher.disconnect(); stamp(); } });
  watcher.observe(document.body, {childList: true, subtree: true, characterData: true});
})})"""
LOADS = "() => performance.getEntriesByType('navigation').length"


def copy_talk(scratch: Path) -> Path:
    root = scratch / "talk"
    for name in ("slides", "demos"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    if (REPO / ".cache" / "deck").is_dir():
        shutil.copytree(REPO / ".cache" / "deck", root / ".cache" / "deck")
    return root


def start(root: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(REPO / "build.py"), "--root", str(root), *extra, "serve",
                                "--port", "0"], stderr=subprocess.PIPE, text=True, process_group=0)
    log = ""
    while "serving http://" not in log:
        line = process.stderr.readline()
        if not line:
            raise SystemExit(f"serve did not start:\n{log}")
        log += line
    # keep reading what it prints: a full pipe would stop the server at its next message
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, re.search(r"serving (\S+)", log).group(1)


def prose_line(slide: Path) -> int:
    """The index of the first line of prose (not an attribute, heading, template tag or list) in a slide file."""
    for index, line in enumerate(slide.read_text().splitlines()):
        if re.match(r"[A-Za-z]", line) and "{" not in line and not line.startswith("Note:"):
            return index
    raise SystemExit(f"{slide}: no line of prose to edit")


def measure(page, slide: Path, repeats: int) -> list[float]:
    lines = slide.read_text().splitlines()
    where = prose_line(slide)
    original = lines[where]
    delays = []
    for edit in range(repeats):
        marker = f"(live edit {edit})"
        painted = page.evaluate_handle(PAINTED, marker)
        lines[where] = f"{original} {marker}"
        saved = time.time() * 1000
        slide.write_text("\n".join(lines) + "\n")
        shown = page.evaluate("handle => Promise.race([handle.painted, new Promise(r => setTimeout(r, 20000, null))])",
                              painted)
        if shown is None:
            raise SystemExit(f"edit {edit} was not shown within 20 s (page loads: {page.evaluate(LOADS)})")
        delays.append(shown - saved)
        time.sleep(0.3)   # a presenter does not save ten times a second
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--results", type=Path, help="build from this results archive (nothing runs)")
    options = parser.parse_args()
    extra = ["--results", str(options.results.resolve())] if options.results else []
    with tempfile.TemporaryDirectory(prefix="deck-serve-bench-") as scratch:
        root = copy_talk(Path(scratch))
        if not extra and not (root / ".cache").is_dir():
            print("no build cache: the first build runs every demo (minutes)", file=sys.stderr)
        process, url = start(root, extra)
        try:
            with chromium() as context:
                page = context.new_page()
                page.goto(url)
                page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60000)
                slides = sorted((root / "slides").glob("*.md"))
                slide = slides[len(slides) // 2]
                delays = measure(page, slide, options.repeats + 1)
                loads = page.evaluate(LOADS)
        finally:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)
    first, rest = delays[0], sorted(delays[1:])
    p95 = rest[min(len(rest) - 1, round(0.95 * (len(rest) - 1)))]
    print(f"save -> new text painted, prose edit of {slide.name} (n={len(rest)}): "
          f"median {statistics.median(rest):.0f} ms, p95 {p95:.0f} ms (min {rest[0]:.0f}, max {rest[-1]:.0f}); "
          f"first edit {first:.0f} ms; page loads: {loads}")


if __name__ == "__main__":
    main()
