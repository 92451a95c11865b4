"""The `deck` console script runs build.py's own main(); nothing named `build` is installed."""
import tomllib
from pathlib import Path

import pytest

from deck import cli

REPO = Path(__file__).resolve().parent.parent


def test_pyproject_installs_the_deck_command_and_no_module_named_build():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"deck": "deck.cli:main"}
    assert "py-modules" not in project["tool"]["setuptools"]
    assert project["tool"]["setuptools"]["packages"] == ["deck"]


def test_the_command_runs_the_checkouts_build_py(project, capsys):
    assert cli.BUILD_SCRIPT == REPO / "build.py"
    assert cli.main(["build", "--root", str(project), "--out", str(project)]) == 1
    assert f"error: cannot write the deck to {project}: it is the talk's folder" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["build", "notes", "serve", "pdf"])
def test_every_command_takes_the_build_options(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "--device" in shown and "--out" in shown and "--results" in shown
