import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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
    """The temporary-files folder (TMPDIR) of builds of this talk in tests, so a test sees only its own.
    Short, because Chromium puts a Unix socket in it and a socket's path has at most 107 characters."""
    path = Path(tempfile.gettempdir()) / f"deck-test-{hashlib.sha256(str(root).encode()).hexdigest()[:10]}"
    path.mkdir(exist_ok=True)
    return path


def run_build(root: Path, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """python build.py --root ROOT ARGS, as a presenter runs it."""
    kwargs.setdefault("env", dict(os.environ, TMPDIR=str(scratch_dir(root))))
    return subprocess.run([sys.executable, str(REPO / "build.py"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def start_build(root: Path, *args: str, **environment) -> subprocess.Popen:
    """python build.py in the background, as run_build, with Ctrl-C's default action even when the tests
    themselves run as a background job (which starts with SIGINT ignored)."""
    return subprocess.Popen([sys.executable, str(REPO / "build.py"), "--root", str(root), *args],
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TMPDIR=str(scratch_dir(root)), **environment),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
