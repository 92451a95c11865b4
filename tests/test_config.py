"""[tool.deck] in pyproject.toml: read once into a checked Config (deck/config.py)."""
import dataclasses
import datetime
import re
from pathlib import Path

import pytest

import build
from deck.config import KEYS, Config, check_timeouts, read_config
from deck.errors import BuildError

REPO = Path(__file__).resolve().parent.parent


def config_of(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return read_config(path)


def test_no_pyproject_or_no_table_gives_the_defaults(tmp_path):
    assert read_config(tmp_path / "missing.toml") == Config()
    assert config_of(tmp_path, '[project]\nname = "x"\n') == Config()
    assert Config().talk == {"title": "Untitled talk", "subtitle": "", "presenter": "", "date": "",
                             "repository": "", "target_minutes": 45}


def test_every_key_is_read(tmp_path):
    config = config_of(tmp_path, """
[tool.deck]
title = "T"
subtitle = "S"
presenter = "P"
date = 2026-11-25
repository = "https://example.org/talk"
target_minutes = 42.5
demo_timeout_s = 120
env = ["OMP_NUM_THREADS"]

[tool.deck.timeouts]
"arith.tensor_sum" = 30
""")
    assert config == Config(title="T", subtitle="S", presenter="P", date="2026-11-25",
                            repository="https://example.org/talk", target_minutes=42.5, demo_timeout_s=120,
                            timeouts={"arith.tensor_sum": 30}, env=("OMP_NUM_THREADS",))
    assert config.talk["date"] == "2026-11-25" and config.talk["target_minutes"] == 42.5


def test_an_unknown_key_names_the_file_line_and_the_closest_key(tmp_path):
    with pytest.raises(BuildError) as caught:
        config_of(tmp_path, '[tool.deck]\ntitle = "T"\npresentor = "Me"\n')
    assert str(caught.value).startswith(
        "pyproject.toml:3: [tool.deck] presentor: unknown key (did you mean: presenter")
    assert "the keys are title, subtitle, presenter, date, repository, target_minutes" in str(caught.value)


@pytest.mark.parametrize("line, message", [
    ("title = 3", "title: must be a string, not a number 3"),
    ('target_minutes = "45"', "target_minutes: must be a number of minutes > 0, not a string '45'"),
    ("target_minutes = 0", "target_minutes: must be a number of minutes > 0, not a number 0"),
    ("demo_timeout_s = true", "demo_timeout_s: must be a number of seconds > 0, not a boolean True"),
    ('env = "OMP_NUM_THREADS"', "env: must be a list of environment variable names"),
    ("env = [1]", "env: must be a list of environment variable names"),
    ("timeouts = 30", 'timeouts: must be a table of "module.function" = seconds, not a number 30'),
    ("date = [2026]", "date: must be a string or a date, not a list [2026]"),
])
def test_a_value_of_the_wrong_type_names_the_key_and_the_type(tmp_path, line, message):
    with pytest.raises(BuildError) as caught:
        config_of(tmp_path, f'[project]\nname = "x"\n\n[tool.deck]\n{line}\n')
    assert str(caught.value).startswith(f"pyproject.toml:5: [tool.deck] {message}")


def test_a_per_demo_limit_must_be_seconds_and_a_demo_name_must_be_quoted(tmp_path):
    with pytest.raises(BuildError, match=r'^pyproject.toml:3: \[tool.deck.timeouts\] arith.tensor_sum: must be '
                                         r"a number of seconds > 0, not a string 'long'$"):
        config_of(tmp_path, '[tool.deck.timeouts]\n\n"arith.tensor_sum" = "long"\n')
    with pytest.raises(BuildError, match=r'^pyproject.toml:2: \[tool.deck.timeouts\] arith: must be .* not a '
                                         r'table; a demo name holds a dot, so quote it: "arith.NAME" = SECONDS$'):
        config_of(tmp_path, "[tool.deck.timeouts]\narith.tensor_sum = 30\n")


def test_a_table_that_is_not_a_table_and_bad_toml_name_the_file(tmp_path):
    with pytest.raises(BuildError, match=r"^pyproject.toml: \[tool.deck\] must be a table, not a number 3$"):
        config_of(tmp_path, "[tool]\ndeck = 3\n")
    with pytest.raises(BuildError, match=r"^pyproject.toml: not valid TOML: "):
        config_of(tmp_path, "[tool.deck\ntitle = 1\n")


def test_per_demo_limits_name_demos_the_talk_defines(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.deck]\ntitle = "T"\n\n'
                    '[tool.deck.timeouts]\n"arith.tensor_sum" = 5\n"arith.tensor_smu" = 5\n')
    config = read_config(path)
    check_timeouts(Config(timeouts={"arith.tensor_sum": 5}), ["arith.tensor_sum"], path)
    with pytest.raises(BuildError) as caught:
        check_timeouts(config, ["arith.tensor_sum", "words.count"], path)
    assert str(caught.value) == ("pyproject.toml:6: [tool.deck.timeouts] arith.tensor_smu: no such demo "
                                 "(did you mean: arith.tensor_sum?)")


@pytest.mark.parametrize("table, message", [
    ('[tool.deck]\npresentor = "Me"\n', "pyproject.toml:2: [tool.deck] presentor: unknown key (did you mean"),
    ('[tool.deck.timeouts]\n"arith.tensor_smu" = 5\n', "pyproject.toml:2: [tool.deck.timeouts] arith.tensor_smu: "
                                                       "no such demo (did you mean: arith.tensor_sum"),
])
def test_the_builder_reports_a_bad_configuration_before_running_anything(project, capsys, table, message):
    (project / "pyproject.toml").write_text(table)
    assert build.main(["--root", str(project), "--out", str(project / "dist")]) == 1
    error = capsys.readouterr().err
    assert f"error: {message}" in error and "Traceback" not in error
    assert not (project / "dist").exists() and not (project / ".cache" / "deck" / "results").exists()


def test_the_readme_lists_every_key_with_its_default():
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", readme, flags=re.M))
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(Config)}
    assert sorted(rows) == sorted(KEYS)
    for key, default in defaults.items():
        shown = rows[key].strip()
        default = list(default) if isinstance(default, tuple) else default   # as TOML writes it
        assert shown in (f"`{default!r}`".replace("'", '"'), "none"), (key, shown)


def test_the_talks_own_configuration_is_valid():
    config = read_config(REPO / "pyproject.toml")
    assert config.title and isinstance(config.target_minutes, (int, float))
    assert datetime.date.fromisoformat(config.date)
