"""Two cold builds of the talk on one machine give the same values, so a member of the audience who
reruns a demo gets the slide's number.  Only what depends on timings (`measured`, timings) may differ."""
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, run_build

pytestmark = pytest.mark.slow


def values_in(archive: Path) -> dict[str, dict]:
    with tarfile.open(archive) as tar:
        entries = [json.load(io.BytesIO(tar.extractfile(m).read())) for m in tar.getmembers() if m.isfile()]
    return {entry["demo"] + entry["args_json"]: entry["result"]["values"] for entry in entries}


def test_two_cold_builds_at_small_size_give_identical_values(tmp_path):
    archives = []
    for run in ("first", "second"):
        root = tmp_path / run
        for part in ("slides", "demos", "templates"):
            shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "pyproject.toml", root)
        archives.append(tmp_path / f"{run}.tar")
        build = run_build(root, "--size", "small", "--export-results", str(archives[-1]), timeout=1800)
        assert build.returncode == 0, build.stderr
    first, second = map(values_in, archives)
    assert len(first) >= 19 and first.keys() == second.keys()
    for demo in first:
        assert (demo, first[demo]) == (demo, second[demo])
