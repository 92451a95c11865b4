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
    """A copy of the small fixture talk, with the real timing helper beside its demos."""
    root = tmp_path / "talk"
    shutil.copytree(FIXTURE, root)
    shutil.copy(REPO / "demos" / "_timing.py", root / "demos" / "_timing.py")
    return root


def scratch_dir(root: Path) -> Path:
    """The temporary-files folder of builds of this talk in tests (TMPDIR), so a test sees only its own."""
    path = root.parent / "tmp"
    path.mkdir(exist_ok=True)
    return path


def run_build(root: Path, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """python build.py --root ROOT ARGS, as a presenter runs it."""
    kwargs.setdefault("env", dict(os.environ, TMPDIR=str(scratch_dir(root))))
    return subprocess.run([sys.executable, str(REPO / "build.py"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout, **kwargs)
