"""Two builds of the talk on one machine give the same values, so a member of the audience who
reruns a demo gets the slide's number.  Only what depends on timings (`measured`, timings) may differ."""
import io
import json
import tarfile
from pathlib import Path

import pytest

from conftest import copy_of_talk, run_build

pytestmark = pytest.mark.slow


def values_in(archive: Path) -> dict[str, dict]:
    with tarfile.open(archive) as tar:
        entries = [json.load(io.BytesIO(tar.extractfile(m).read())) for m in tar.getmembers() if m.isfile()]
    return {entry["demo"] + entry["args_json"]: entry["result"]["values"] for entry in entries}


def test_two_builds_at_small_size_give_identical_values(request, tmp_path):
    """The talk's own build (the session's, with the talk's cache) and a cold build of a copy of it, made
    first: the session's may still be running on another worker.  Every demo runs again; only Inductor's
    on-disk cache may be warm from the session's build (it changes compile times, not values)."""
    copy = copy_of_talk(tmp_path / "copy")
    archive = tmp_path / "copy.tar"
    build = run_build(copy, "--size", "small", "--out", str(tmp_path / "dist"), "--export-results", str(archive),
                      timeout=1800)
    assert build.returncode == 0, build.stderr
    assert "0 cached" in build.stderr                      # the copy's build ran every demo
    first, second = values_in(request.getfixturevalue("talk_build").results), values_in(archive)
    assert len(first) >= 19 and first.keys() == second.keys()
    for demo in first:
        assert (demo, first[demo]) == (demo, second[demo])
