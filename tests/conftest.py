import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixture"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the small fixture talk, with the real demo result types beside its demos."""
    root = tmp_path / "talk"
    shutil.copytree(FIXTURE, root)
    for helper in ("_results.py", "_timing.py"):
        shutil.copy(REPO / "demos" / helper, root / "demos" / helper)
    return root


def run_build(root: Path, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """python build.py --root ROOT ARGS, as a presenter runs it."""
    return subprocess.run([sys.executable, str(REPO / "build.py"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout, **kwargs)
