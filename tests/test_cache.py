"""Cache keys cover what can change a result and nothing else; damaged entries are never trusted."""
import json

import pytest

from deck.catalog import load_catalog
from deck.references import DemoCall
from deck.runner import CACHE_FORMAT, ResultCache, cache_key

CALL = DemoCall("arith.tensor_sum")


def key(project, call=CALL, device="cpu", size="full", torch="2.13.0"):
    return cache_key(call, load_catalog(project / "demos", project), device, size, torch)


def test_the_key_is_stable_and_ignores_slides(project):
    before = key(project)
    (project / "slides" / "10-intro.md").write_text("## Only prose changed\n")
    assert key(project) == before


@pytest.mark.parametrize("change", [
    lambda p: p.joinpath("demos/arith.py").write_text(p.joinpath("demos/arith.py").read_text() + "\n# edit\n"),
    lambda p: p.joinpath("demos/_results.py").write_text(p.joinpath("demos/_results.py").read_text() + "\n# edit\n"),
    lambda p: p.joinpath("demos/arith.csv").write_text("a,b\n1,2\n"),
], ids=["module source", "imported helper module", "data file of the module"])
def test_the_key_changes_with_what_can_change_the_result(project, change):
    before = key(project)
    change(project)
    assert key(project) != before


def test_the_key_changes_with_arguments_device_size_and_torch(project):
    base = key(project)
    assert key(project, call=DemoCall("arith.tensor_sum", '{"n": 2}')) != base
    assert key(project, device="cuda") != base
    assert key(project, size="small") != base
    assert key(project, torch="2.14.0") != base


def test_editing_one_module_leaves_other_modules_keys_alone(project):
    (project / "demos" / "other.py").write_text("def thing(device, size):\n    return None\n")
    other = DemoCall("other.thing")
    before = key(project, call=other)
    (project / "demos" / "arith.py").write_text((project / "demos" / "arith.py").read_text() + "\n# edit\n")
    assert key(project, call=other) == before


def good_result():
    return {"values": {"total": 45}, "tables": [], "figures": [], "timings": {}, "output": "", "output_bytes": 0,
            "truncated": False, "seconds": 0.1, "ran_at": "2026-01-01T00:00:00+00:00",
            "provenance": {"device": "cpu"}}


def test_a_stored_result_reads_back(tmp_path):
    cache = ResultCache(tmp_path)
    cache.store("k1", "arith.tensor_sum", good_result())
    assert cache.load("k1") == good_result()
    assert cache.load("missing") is None


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                                            # truncated
    lambda text: "\x00garbage" + text[5:],                                           # garbled
    lambda text: text.replace(f'"format": {CACHE_FORMAT}', '"format": 999'),         # another version
    lambda text: json.dumps({"format": CACHE_FORMAT, "key": "k1", "result": {"values": {}}}),  # fields missing
    lambda text: text.replace('"key": "k1"', '"key": "k2"'),                         # someone else's entry
])
def test_a_damaged_entry_is_discarded_not_trusted(tmp_path, damage, capsys):
    cache = ResultCache(tmp_path)
    cache.store("k1", "arith.tensor_sum", good_result())
    path = cache.path("k1")
    path.write_text(damage(path.read_text()))
    assert cache.load("k1") is None
    assert not path.exists()
    assert "discarding cache entry" in capsys.readouterr().err
