"""Nothing is left behind: a build leaves its temporary folder as it found it, and a test run that leaves
anything in its private temporary folder fails, saying what (conftest.py)."""
import os
import types
from pathlib import Path

import pytest

import conftest
from conftest import PRIVATE, private_environment, run_build


def test_left_in_lists_files_and_empty_folders_but_not_empty_scratch_folders(tmp_path):
    (tmp_path / "talk-01234567").mkdir()                     # a talk's scratch folder, empty
    (tmp_path / "talk-abcdefab").mkdir()
    (tmp_path / "talk-abcdefab" / "demos-x").mkdir()  # ... and one a server left
    (tmp_path / "compose_modules-1234").mkdir()
    (tmp_path / "torchinductor_me" / "fx").mkdir(parents=True)
    (tmp_path / "torchinductor_me" / "fx" / "graph.bin").write_bytes(b"x")
    assert conftest.left_in(tmp_path) == ["compose_modules-1234", "talk-abcdefab/demos-x",
                                          "torchinductor_me/fx/graph.bin"]
    assert not (tmp_path / "talk-01234567").exists()


def finish(private: Path, monkeypatch) -> types.SimpleNamespace:
    """conftest's end of a run, on a private folder made for the test."""
    monkeypatch.setenv(PRIVATE, str(private))
    session = types.SimpleNamespace(config=types.SimpleNamespace(stash={}), exitstatus=pytest.ExitCode.OK)
    session.config.stash = {}
    conftest.pytest_sessionfinish(session, 0)
    return session


def test_a_run_that_leaves_a_file_fails_and_the_private_folder_goes(tmp_path, monkeypatch):
    private = tmp_path / "private"
    (private / "tmp").mkdir(parents=True)
    (private / "tmp" / "checkpoint_roundtrip-x1").mkdir()
    session = finish(private, monkeypatch)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert session.config.stash[conftest.LEFTOVERS] == ["checkpoint_roundtrip-x1"]
    assert not private.exists()


def test_a_run_that_leaves_nothing_keeps_its_exit_status(tmp_path, monkeypatch):
    private = tmp_path / "private"
    (private / "tmp" / "talk-01234567").mkdir(parents=True)
    (private / "cache" / "inductor").mkdir(parents=True)          # compiler caches are removed, not reported
    session = finish(private, monkeypatch)
    assert session.exitstatus == pytest.ExitCode.OK and session.config.stash[conftest.LEFTOVERS] == []
    assert not private.exists()


def test_this_run_keeps_its_temporary_files_in_its_private_folder(tmp_path):
    private = Path(os.environ[PRIVATE])
    for name, value in private_environment(private).items():
        assert os.environ[name] == value
    assert Path(conftest.tempfile.gettempdir()) == private / "tmp"
    assert tmp_path.is_relative_to(private)


@pytest.mark.slow
def test_a_test_that_leaves_a_file_fails_the_run_naming_it(pytester):
    pytester.makeconftest((Path(conftest.__file__)).read_text())
    pytester.makepyfile(test_inner="""
        import tempfile
        from pathlib import Path

        def test_leaves_a_file():
            Path(tempfile.gettempdir(), "forgotten.txt").write_text("x")

        def test_cleans_up(tmp_path):
            (tmp_path / "kept.txt").write_text("x")
        """)
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", timeout=300)
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    run.stdout.fnmatch_lines(["*left behind in the temporary folder*", "  forgotten.txt", "*2 passed*"])
    assert "kept.txt" not in run.stdout.str()
    assert not list(Path(conftest.tempfile.gettempdir()).glob("deck-tests-*"))   # its private folder is gone


@pytest.mark.slow
def test_a_build_leaves_the_temporary_folder_as_it_found_it(project, tmp_path):
    """As a presenter runs it: no compiler cache variables, TMPDIR the machine's own."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    presenter = {k: v for k, v in os.environ.items() if k not in private_environment(Path())}
    build = run_build(project, env=dict(presenter, TMPDIR=str(temporary)))
    assert build.returncode == 0, build.stderr
    assert sorted(os.listdir(temporary)) == []
