"""The output folder is the builder's alone, and its swap leaves a whole deck whenever the build is killed."""
import os
import signal
import sys
from pathlib import Path

import pytest

import build
from conftest import run_build
from deck import output
from deck.errors import BuildError
from deck.output import MARKER, check_output_folder, own_output_folder, write_atomically

REPO = Path(__file__).resolve().parent.parent


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under folder, with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def deck_in(folder: Path) -> dict[str, bytes]:
    """The deck a folder holds, without the builder's marker (which it must have)."""
    files = listing(folder)
    assert MARKER in files, f"{folder} is missing or has no {MARKER}"
    del files[MARKER]
    return files


@pytest.mark.parametrize("out, reason", [
    (".", "it is the talk's folder"),
    ("..", "it holds the talk's folder"),
    ("slides", "inside"),
    ("slides/new", "inside"),
    ("demos", "inside"),
    ("templates", "inside"),
])
def test_folders_of_the_talk_are_refused_and_left_untouched(project, out, reason):
    (project / "templates").mkdir()
    before = listing(project.parent)
    with pytest.raises(BuildError, match=reason) as caught:
        own_output_folder(project / out, project, REPO)
    assert "cannot write the deck to" in str(caught.value)
    assert listing(project.parent) == before


def test_the_builders_own_folders_are_refused(tmp_path):
    talk = tmp_path / "talk"
    # a parent of the builder may hold the talk too (a checkout in the temporary folder): then that is named first
    parent_holds = "it holds the talk's folder" if talk.is_relative_to(REPO.parent) else "it holds the builder's folder"
    for out, reason in [(REPO, "it is the builder's folder"), (REPO.parent, parent_holds),
                        (REPO / "deck", "inside"), (REPO / "templates" / "x", "inside")]:
        with pytest.raises(BuildError, match=reason):
            check_output_folder(out, talk, REPO)


def test_a_folder_with_other_files_or_a_file_is_refused(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(BuildError, match=r"holds files this builder did not write \(photo.jpg\)"):
        own_output_folder(site, tmp_path / "talk", REPO)
    with pytest.raises(BuildError, match="it is a file"):
        own_output_folder(site / "photo.jpg", tmp_path / "talk", REPO)
    assert listing(site) == {"photo.jpg": b"mine"}


def test_missing_empty_and_marked_folders_are_the_builders(tmp_path):
    talk, out = tmp_path / "talk", tmp_path / "site" / "dist"
    check_output_folder(out, talk, REPO)            # missing
    out.mkdir(parents=True)
    check_output_folder(out, talk, REPO)            # empty
    write_atomically({"index.html": "one"}, out)
    (out / "deck.pdf").write_bytes(b"%PDF")         # `build.py pdf` writes beside the deck
    check_output_folder(out, talk, REPO)            # marked
    write_atomically({"index.html": "two"}, out)
    assert deck_in(out) == {"index.html": b"two"}
    assert os.listdir(out.parent) == ["dist"]


def test_build_refuses_the_talks_folder_before_running_anything(project, capsys):
    before = listing(project)
    assert build.main(["--root", str(project), "--out", str(project / "slides")]) == 1
    assert "cannot write the deck to" in capsys.readouterr().err
    assert listing(project) == before               # nothing written, not even the build lock


@pytest.mark.slow
def test_build_py_out_dot_keeps_the_talk(project):
    before = listing(project)
    done = run_build(project, "--out", ".", cwd=project)
    assert done.returncode == 1
    assert f"error: cannot write the deck to {project}: it is the talk's folder" in done.stderr
    assert "Traceback" not in done.stderr
    assert listing(project) == before


# --- the swap, killed at each step ------------------------------------------------------------

OLD = {"index.html": "old", "assets/deck.js": "old js"}
NEW = {"index.html": "new", "assets/deck.js": "new js", "notes.html": "new notes"}
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.chmod", "shutil.rmtree", "tempfile.mkdtemp",
           "ctypes.call_function"}


def changes_files(event: str, args: tuple) -> bool:
    if event == "open":
        _, mode, flags = args
        return any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    return event in CHANGES


def write_killed_at(step: int, files: dict, out: Path) -> bool:
    """Write the deck in a forked child that SIGKILLs itself just before its step-th change to the
    file system; True if it was killed (False: the write has fewer steps and finished)."""
    pid = os.fork()
    if pid == 0:
        try:
            seen = 0

            def hook(event, args):
                nonlocal seen
                if changes_files(event, args):
                    seen += 1
                    if seen == step:
                        os.kill(os.getpid(), signal.SIGKILL)
            sys.addaudithook(hook)
            write_atomically(files, out)
            os._exit(0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0, "the write failed in the child"
    return os.WIFSIGNALED(status)


def as_bytes(files: dict) -> dict:
    return {name: text.encode() for name, text in files.items()}


def kill_at_every_step(tmp_path: Path, whole_after_kill: bool) -> int:
    for step in range(1, 200):
        out = tmp_path / f"run{step}" / "dist"
        write_atomically(OLD, out)
        killed = write_killed_at(step, NEW, out)
        if whole_after_kill:
            assert deck_in(out) in (as_bytes(OLD), as_bytes(NEW)), f"killed before step {step}"
        own_output_folder(out, tmp_path / "talk", REPO)         # the next build starts
        assert deck_in(out) in (as_bytes(OLD), as_bytes(NEW)), f"killed before step {step}"
        write_atomically({"index.html": "next"}, out)
        assert deck_in(out) == {"index.html": b"next"}
        assert os.listdir(out.parent) == ["dist"], f"left behind after a kill before step {step}"
        if not killed:
            return step
    raise AssertionError("the write never finished")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_kill_at_any_step_of_the_swap_leaves_a_whole_deck(tmp_path):
    assert output.exchange(tmp_path, tmp_path) or sys.platform not in ("linux", "darwin")
    steps = kill_at_every_step(tmp_path, whole_after_kill=True)
    assert steps > len(NEW) + 3      # the hook saw every file written, the swap and the clean-up


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_without_an_exchange_call_the_next_build_puts_the_last_deck_back(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "exchange", lambda a, b: False)
    steps = kill_at_every_step(tmp_path, whole_after_kill=False)
    assert steps > len(NEW) + 3
