"""serve's rebuilds reuse what the last one computed (deck/memo.py), and notice every kind of change."""
import argparse
import os
import time

from build import read_catalog
from deck.archive import export_archive
from deck.memo import Memo
from deck.render_cache import RenderCache
from deck.result import DemoCall, Provenance, Result
from deck.runner import RunSettings, run_demos

PROVENANCE = Provenance("cuda", "cuda (test)", "2.13.0", "3.11", "2026-12-01T00:00:00+00:00", 0.5)
AN_HOUR_AGO = time.time() - 3600


def write(path, text, age_s=0):
    """Write a file as an editor would, dated ``age_s`` seconds before an hour ago (settled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (AN_HOUR_AGO - age_s, AN_HOUR_AGO - age_s))


def counted(memo, name, paths):
    calls = []
    memo.of_files(name, paths, lambda: calls.append(1))
    return len(calls)


def test_a_value_is_reused_until_a_file_changes_appears_or_goes(tmp_path):
    memo, first, second = Memo(), tmp_path / "a.txt", tmp_path / "b.txt"
    write(first, "one")
    assert counted(memo, "x", [first]) == 1 and counted(memo, "x", [first]) == 0
    write(first, "two", age_s=10)                  # same size, another mtime
    assert counted(memo, "x", [first]) == 1 and counted(memo, "x", [first]) == 0
    assert counted(memo, "x", [first, second]) == 1   # a file that is not there yet
    write(second, "new")
    assert counted(memo, "x", [first, second]) == 1
    second.unlink()
    assert counted(memo, "x", [first, second]) == 1


def test_a_file_changed_just_now_is_read_again_next_time(tmp_path):
    memo, path = Memo(), tmp_path / "a.txt"
    path.write_text("just saved")
    assert counted(memo, "x", [path]) == 1 and counted(memo, "x", [path]) == 1


def test_an_edit_to_a_demo_file_is_seen(tmp_path):
    options, memo = argparse.Namespace(root=tmp_path), Memo()
    write(tmp_path / "demos" / "basics.py", "def one(device, size):\n    return {}\n")
    catalog = read_catalog(options, memo)
    assert read_catalog(options, memo) is catalog and catalog.demo_names == ["basics.one"]
    write(tmp_path / "demos" / "basics.py", "def two(device, size):\n    return {}\n", age_s=10)
    assert read_catalog(options, memo).demo_names == ["basics.two"]
    write(tmp_path / "demos" / "extra.py", "def three(device, size):\n    return {}\n")
    assert read_catalog(options, memo).demo_names == ["basics.two", "extra.three"]


def test_an_edit_to_a_template_is_seen(tmp_path):
    templates, memo = tmp_path / "templates", Memo()
    write(templates / "deck.css", "a {}")
    before = RenderCache(tmp_path / ".cache", templates, memo).templates
    assert RenderCache(tmp_path / ".cache", templates, memo).templates == before
    write(templates / "deck.css", "b {}", age_s=10)
    assert RenderCache(tmp_path / ".cache", templates, memo).templates != before


def test_a_new_archive_is_read_and_the_old_results_are_left_as_they_were(tmp_path):
    (tmp_path / "demos").mkdir()
    archive, call, memo = tmp_path / "results.tar", DemoCall("basics.one"), Memo()
    settings = RunSettings(root=tmp_path, builder=tmp_path, cache_dir=tmp_path / ".cache", device="cpu",
                           results_archive=archive, memo=memo)

    def shown(value):
        export_archive({call: Result(values={"v": value}, provenance=PROVENANCE, reads={"demos/a.py": "0" * 64})},
                       "full", archive)
        os.utime(archive, (AN_HOUR_AGO - value, AN_HOUR_AGO - value))
        return run_demos([call], [], settings)[call]

    first = shown(1)
    assert first.values == {"v": 1} and first.provenance.stale   # demos/a.py is not what the demo read
    assert run_demos([call], [], settings)[call] is first        # nothing changed: the same result
    assert shown(2).values == {"v": 2}
    imported = memo.by_files["archive", "full"][1][call.demo, call.args_json]
    assert not imported.provenance.stale                         # the copy is marked, not the archive's
