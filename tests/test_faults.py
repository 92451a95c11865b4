"""Fault injection: whatever goes wrong, the build says what and where, and the last good deck survives.

Every case runs against a copy of the fixture talk built once for the session (its cache included),
and checks the message, the exit code, that dist/ is byte-identical, and that no staging folder or
worker is left. A case whose demo runs starts a demo server, so it is marked slow.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from markupsafe import escape

from conftest import REPO, build_here, run_build, scratch_dir, start_build

BAD_DEMOS = '''
import os, sys, time
from deck.result import Result


def raises(device, size="full"):
    raise ValueError("the demo broke on purpose")


def hangs(device, size="full"):
    time.sleep(600)


def exits(device, size="full"):
    os._exit(3)


def aborts(device, size="full"):
    os.abort()


def segfaults(device, size="full"):
    import ctypes
    ctypes.string_at(0)


def floods(device, size="full"):
    line = "x" * 1023 + "\\n"
    for _ in range(50 * 1024):
        sys.stdout.write(line)
    return Result(values={"done": True})


def returns_a_number(device, size="full"):
    return 42


def returns_a_tensor_value(device, size="full"):
    import torch
    return Result(values={"loss": torch.tensor(1.5)})
'''


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def workers_of(project: Path) -> list[int]:
    """Worker processes (and their children) still running for this project."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(project) and ("deck.worker" in cmdline or "multiprocessing" in cmdline):
            found.append(int(entry.name))
    return found


@pytest.fixture
def built(built_project):
    """A built copy of the fixture talk, plus a module of misbehaving demos."""
    (built_project / "demos" / "bad.py").write_text(BAD_DEMOS)
    return built_project, snapshot(built_project / "dist")


def use(project: Path, *references: str) -> None:
    """A slide file whose slide 1, line 4 (and on) references the given demos."""
    body = "\n".join(f"{{{{ {reference} }}}}" for reference in references)
    (project / "slides" / "30-faulty.md").write_text(f"<!-- .slide: timing=10 -->\n## Faulty\n\n{body}\n\nNote:\nx\n")


def leftovers(project: Path) -> list[str]:
    """Staging folders beside dist/ and worker scratch folders that a build should have removed."""
    return ([p.name for p in project.iterdir() if p.name.startswith(".dist.")]
            + [p.name for p in scratch_dir(project).glob("demos-*")])


def assert_failed_cleanly(project: Path, before: dict, build, *messages: str) -> None:
    assert build.returncode != 0, build.stderr
    for message in messages:
        assert message in build.stderr, build.stderr
    assert snapshot(project / "dist") == before
    assert leftovers(project) == []
    assert workers_of(project) == []


@pytest.mark.slow
def test_demo_raises(built):
    project, before = built
    use(project, 'demo("bad.raises")')
    build = build_here(project)
    assert_failed_cleanly(project, before, build, "slides/30-faulty.md:4: demo bad.raises raised an exception:",
                          'bad.py", line 7, in raises', "ValueError: the demo broke on purpose")


@pytest.mark.slow
def test_demo_hangs_and_is_killed_after_its_timeout(built):
    project, before = built
    use(project, 'demo("bad.hangs")')
    (project / "pyproject.toml").write_text('[tool.deck]\npreload = []\n\n[tool.deck.timeouts]\n"bad.hangs" = 3\n')
    started = time.monotonic()
    build = run_build(project, timeout=120)
    assert time.monotonic() - started < 60
    assert_failed_cleanly(project, before, build, "slides/30-faulty.md:4: demo bad.hangs timed out after 3 s and was killed")
    faster = run_build(project, "--timeout", "1", timeout=120)                # the command line wins
    assert_failed_cleanly(project, before, faster, "timed out after 1 s")


@pytest.mark.slow
@pytest.mark.parametrize("demo, how", [("exits", "exit status 3"), ("aborts", "killed by SIGABRT"),
                                       ("segfaults", "killed by SIGSEGV")])
def test_demo_kills_its_own_process(built, demo, how):
    project, before = built
    use(project, f'demo("bad.{demo}")', 'result("arith.scaled", args={"factor": 5}).value')
    build = build_here(project)
    assert_failed_cleanly(project, before, build, f"slides/30-faulty.md:4: demo bad.{demo} crashed", how)
    kept = build_here(project, "--keep-going")                                 # later demos still run
    assert kept.returncode == 0, kept.stderr
    assert re.search(r"\[2/2\] arith.scaled \.\.\. \d", kept.stderr)         # in a fresh worker
    index = (project / "dist" / "index.html").read_text()
    assert f"demo bad.{demo} crashed" in index and 'class="error-card"' in index and "<p>35</p>" in index
    assert workers_of(project) == []


@pytest.mark.slow
def test_a_flood_of_output_is_capped_and_the_builder_stays_small(built):
    project, _ = built
    use(project, 'demo("bad.floods")')
    # The builder's own peak memory (VmHWM; ru_maxrss would include the parent's memory from before exec).
    code = ("import re, sys; sys.path.insert(0, %r); import build; code = build.main(['--root', %r]); "
            "print(code, re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))")
    check = subprocess.run([sys.executable, "-c", code % (str(REPO), str(project))],
                           capture_output=True, text=True, timeout=300)
    status, max_rss_kb = check.stdout.split()
    assert status == "0", check.stderr
    assert int(max_rss_kb) < 200 * 1024                                      # 50 MB printed, far less held
    index = (project / "dist" / "index.html").read_text()
    assert "output truncated: the demo printed 52.4 MB" in index
    assert len(index) < 2_000_000


@pytest.mark.slow
@pytest.mark.parametrize("demo, message", [
    ("returns_a_number", "demo bad.returns_a_number returned a builtins.int; a demo returns deck.result.Result"),
    ("returns_a_tensor_value", "demo bad.returns_a_tensor_value: values['loss'] is a torch.Tensor"),
])
def test_demo_returns_something_unsupported(built, demo, message):
    project, before = built
    use(project, f'demo("bad.{demo}")')
    assert_failed_cleanly(project, before, build_here(project), f"slides/30-faulty.md:4: demo bad.{demo}", message)


def test_two_demos_with_the_same_name(built):
    project, before = built
    (project / "demos" / "bad.py").write_text(BAD_DEMOS + "\n\ndef raises(device, size='full'):\n    return None\n")
    assert_failed_cleanly(project, before, build_here(project), "demos/bad.py:", "raises is defined twice")


@pytest.mark.parametrize("reference, message", [
    ('demo("bad.raisse")', "slides/30-faulty.md:4: no demo function 'bad.raisse' in demos/ (did you mean: bad.raises"),
    ('result("words.shout").wrd', "slides/30-faulty.md:4: demo words.shout has no value 'wrd' (did you mean: word?)"),
    ('demo("os.system")', "slides/30-faulty.md:4: no demo function 'os.system'"),
    ('code("../../etc/passwd")', "slides/30-faulty.md:4: no file '../../etc/passwd' in demos/"),
])
def test_unknown_names(built, reference, message):
    project, before = built
    use(project, reference)
    assert_failed_cleanly(project, before, build_here(project), message)
    kept = build_here(project, "--keep-going")                                 # the deck, with a visible card
    assert kept.returncode == 0, kept.stderr
    index = (project / "dist" / "index.html").read_text()
    assert 'class="error-card"' in index and str(escape(message)) in index
    assert "The sum is 45" in index


@pytest.mark.parametrize("content, message", [
    (b"<!-- .slide: timing=soon -->\n## A\n", "slides/30-faulty.md:1: timing must be a whole number"),
    (b"<!-- .slide: timing=5 -->\n## A\n\nna\xefve\n", "slides/30-faulty.md:4: not valid UTF-8"),
])
def test_malformed_slide_files(built, content, message):
    project, before = built
    (project / "slides" / "30-faulty.md").write_bytes(content)
    assert_failed_cleanly(project, before, build_here(project), message)


def test_empty_slides_folder(built):
    project, before = built
    for path in (project / "slides").iterdir():
        path.unlink()
    assert_failed_cleanly(project, before, build_here(project), "slides: no slides: slides/ has no *.md files")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbled", "another version"])
def test_damaged_cache_entries_are_rerun(built, damage):
    project, _ = built
    for entry in (project / ".cache" / "deck" / "results").glob("*.json"):
        text = entry.read_text()
        entry.write_text({"truncated": text[:100], "garbled": "\x00\x01" + text[::-1],
                          "another version": text.replace('"format": 2', '"format": 0')}[damage])
    build = build_here(project)
    assert build.returncode == 0, build.stderr
    assert "4 to run" in build.stderr and "discarding cache entry" in build.stderr


def test_output_folder_not_writable(built, tmp_path):
    project, _ = built
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    build = build_here(project, "--out", str(blocker / "dist"))
    assert build.returncode != 0
    assert f"cannot write the deck to {blocker / 'dist'}" in build.stderr
    assert blocker.read_text() == "not a folder" and workers_of(project) == []


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_mid_build(built, signal_number):
    project, before = built
    use(project, 'demo("bad.hangs")')
    build = start_build(project)
    progress = ""
    while "bad.hangs ..." not in progress:
        progress += build.stderr.read(1)
    time.sleep(1)
    assert workers_of(project)                                                # the demo is running now
    build.send_signal(signal_number)
    _, rest = build.communicate(timeout=30)
    assert build.returncode != 0
    assert "interrupted: the previous deck is untouched" in rest
    assert snapshot(project / "dist") == before
    assert leftovers(project) == []
    assert workers_of(project) == []


@pytest.mark.slow
@pytest.mark.parametrize("second_out", ["dist", "elsewhere"])
def test_two_builds_at_once_take_turns(built, second_out):
    """Of one output folder, or of two: the talk's demos never run twice at once."""
    project, _ = built
    (project / "demos" / "words.py").write_text((project / "demos" / "words.py").read_text().replace(
        "    print(", "    import time; time.sleep(3)\n    print("))
    first = start_build(project)
    time.sleep(0.5)
    second = start_build(project, "--out", str(project / second_out))
    first_err, second_err = first.communicate(timeout=120)[1], second.communicate(timeout=120)[1]
    assert first.returncode == 0 and second.returncode == 0, (first_err, second_err)
    waited = first_err if "waiting for it" in first_err else second_err
    assert "another build of this talk is running" in waited
    assert "0 to run" in waited                                               # the second used the first's results
    for out in {"dist", second_out}:
        index = (project / out / "index.html").read_text()
        assert index.count("<section ") == 7 and index.rstrip().endswith("</html>")


@pytest.mark.parametrize("folder, name", [("demos", "passwd.txt"), ("slides", "99-outside.md"),
                                          ("templates", "deck.css"), ("demos", "outside.py")])
def test_a_link_out_of_the_talk_is_an_error_naming_both_ends(built, tmp_path, folder, name):
    project, before = built
    outside = tmp_path / "outside" / name
    outside.parent.mkdir()
    outside.write_text("secret = 1\n")
    if folder == "templates":
        shutil.copytree(REPO / "templates", project / "templates")
        (project / "templates" / name).unlink()
    (project / folder / name).symlink_to(outside)
    assert_failed_cleanly(project, before, build_here(project), f"{project / folder / name} is a link to {outside}, "
                          f"outside the talk's folder {project}")


def test_a_module_name_two_files_could_mean_is_an_error(built):
    project, before = built
    (project / "demos" / "x.y.py").write_text("def f(device, size='full'):\n    return None\n")
    (project / "demos" / "x").mkdir()
    (project / "demos" / "x" / "y.py").write_text("def f(device, size='full'):\n    return None\n")
    assert_failed_cleanly(project, before, build_here(project), "demos/x.y.py: a demo module's name must be a "
                          "Python identifier: a demo named x.y.FUNCTION would run demos/x/y.py, not this file")
