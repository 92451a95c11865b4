"""What every test shares: a private temporary folder for the run, the fixture talk, built decks, builds.

The run's temporary folder
    Each run (``python -m pytest``, with or without xdist) makes one private folder and points
    ``TMPDIR`` (``tempfile``), ``TORCHINDUCTOR_CACHE_DIR`` and ``TRITON_CACHE_DIR`` into it, so
    compiled kernels are reused across the run's builds and nothing lands in the machine's /tmp.
    pytest's own ``tmp_path`` folders live beside it, and all of it is removed at the end. Anything
    still in ``TMPDIR`` then, other than empty per-talk scratch folders, was left behind by a test,
    a build or a demo: the run lists it and fails.

Torch, where a test module imports it, runs on one thread in this process (``torch_on_one_thread``), and
OpenMP's idle threads sleep instead of spinning in every process of the run (``OMP_WAIT_POLICY``).

Fixtures
    ``project``        a fresh copy of the fixture talk (``tests/fixture/``), never built: for cold builds.
    ``fixture_build``  the session's one cold build of the fixture talk (``Build``: returncode, stdout,
                       stderr, root); starts the demo server once per session (per xdist worker).
    ``built_project``  a copy of that built talk, ``.cache/`` and ``dist/`` included: a rebuild is warm and
                       starts no demo server unless the test changes what a demo reads.
    ``demo_tmpdir``    TMPDIR inside the test's ``tmp_path``, as the demo server gives demos: for tests
                       that run demos in this process.
    ``talk_build``     the real talk (this repository) built once per session at ``--size small``
                       (``TalkBuild``: out folder, results archive); compiles on a fresh clone: slow tests only.

Builds
    ``build_here(root, *args)``  ``build.main([...])`` in this process, as ``Build``: the fast way for tests
                                 that check what a build writes or says, not how its process behaves.
    ``run_build(root, *args)``   ``python build.py`` in a subprocess, as a presenter runs it (mark ``slow``).
    ``start_build(root, *args)`` the same in the background (mark ``slow``).
    ``ran(build)``               the demos a build ran, from its progress lines.

Markers: ``slow`` for a test that starts the builder or a demo server as a process, compiles, or
drives a browser; ``browser`` (with ``slow``) for Chromium. The quick tier is ``-m "not slow"``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
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

# --- the run's private temporary folder ------------------------------------------------------------

PRIVATE = "DECK_TEST_PRIVATE_DIR"     # set by the run that made the folder; xdist workers inherit it
SCRATCH_PREFIX = "talk-"   # short: a demo's TMPDIR inside it must leave room for a socket path
LEFTOVERS = pytest.StashKey[list]()


def private_environment(private: Path) -> dict[str, str]:
    """The variables that keep a run's temporary files and compiler caches inside its private folder, and
    OpenMP's idle threads asleep: the run's workers share the machine's cores, and a torch thread spinning
    while it waits for work takes a core another worker's build needs (only timings change)."""
    return {PRIVATE: str(private), "TMPDIR": str(private / "tmp"),
            "TORCHINDUCTOR_CACHE_DIR": str(private / "cache" / "inductor"),
            "TRITON_CACHE_DIR": str(private / "cache" / "triton"),
            "OMP_WAIT_POLICY": "PASSIVE"}


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not is_xdist_worker(config):
        private = Path(tempfile.mkdtemp(prefix="deck-tests-"))
        (private / "tmp").mkdir()
        os.environ.update(private_environment(private))
        tempfile.tempdir = None                   # tempfile reads TMPDIR again
        if config.option.basetemp is None:
            config.option.basetemp = str(private / "pytest")
    import_onnxruntime_aside(Path(os.environ[PRIVATE]))


def import_onnxruntime_aside(private: Path) -> None:
    """onnxruntime writes a session file into TMPDIR when it is first imported (the demos of part 5
    import it when a test module imports them): import it once here, with TMPDIR in a folder of its own."""
    aside = Path(tempfile.mkdtemp(prefix="onnxruntime-", dir=private))
    before = os.environ["TMPDIR"]
    os.environ["TMPDIR"] = str(aside)
    try:
        import onnxruntime  # noqa: F401
    finally:
        os.environ["TMPDIR"] = before


def left_in(temporary: Path) -> list[str]:
    """What is in a temporary folder, after removing the empty scratch folders the tests made."""
    for entry in temporary.glob(f"{SCRATCH_PREFIX}*"):
        with contextlib.suppress(OSError):
            entry.rmdir()
    return sorted(str(path.relative_to(temporary)) for path in temporary.rglob("*")
                  if path.is_file() or path.is_symlink() or not any(path.iterdir()))


# make test runs three workers on the two cores, each taking a whole file at a time (--dist loadfile), in
# this order (--no-loadscope-reorder).  The session's cold build of the talk (talk_build, first needed in
# test_demo_models) starts first.  The copy's cold build in test_talk_reproducible starts a minute or so
# later, after test_faults: by the time it reaches the compiling demos, the session's build has left
# Inductor's on-disk cache warm for them (about 20 s of CPU saved; the values are the same either way).
# A file of one test is handed out with the next file, so a quick one (test_memo) follows it.  The other
# files go to the workers meanwhile, the longest first, so that the last ones to be handed out are short
# (test_talk_legibility builds the GPU deck in a copy of the talk first).  The files that read the
# session's build come last, when the talk's cache holds it (a build of the talk waits for the one running).
RUN_FIRST = ("test_demo_models.py", "test_run_stage.py", "test_claims.py", "test_faults.py",
             "test_talk_reproducible.py", "test_memo.py", "test_supervision.py", "test_live_browser.py",
             "test_talk_legibility.py", "test_build.py", "test_browser.py", "test_demo_crazy.py",
             "test_run_units.py", "test_pdf.py", "test_demo_tensorflow_wall.py")
RUN_LAST = ("test_notes_print.py", "test_talk.py", "test_demo_production.py", "test_demo_compile_wall.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def place(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in RUN_FIRST:
            return 0, RUN_FIRST.index(name)
        return (2, RUN_LAST.index(name)) if name in RUN_LAST else (1, 0)
    items.sort(key=place)   # stable: each file's tests keep their order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the private folder; fail the run if anything was left in its TMPDIR."""
    if is_xdist_worker(session.config) or PRIVATE not in os.environ:
        return
    private = Path(os.environ[PRIVATE])
    leftovers = left_in(private / "tmp")
    shutil.rmtree(private, ignore_errors=True)
    session.config.stash[LEFTOVERS] = leftovers
    if leftovers and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    leftovers = config.stash.get(LEFTOVERS, [])
    if leftovers:
        terminalreporter.section("left behind in the temporary folder", red=True)
        for path in leftovers[:50]:
            terminalreporter.write_line(f"  {path}")
        if len(leftovers) > 50:
            terminalreporter.write_line(f"  … and {len(leftovers) - 50} more")


@pytest.fixture(scope="session", autouse=True)
def torch_on_one_thread():
    """Demos tested in this process run torch on one thread: their values are checked, not their speed, and
    on a shared 2-core machine a second thread spinning for a busy core makes them several times slower.
    (Builds' demo servers keep torch's own choice.)"""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def scratch_dir(root: Path) -> Path:
    """The temporary-files folder (TMPDIR) of builds of this talk in tests, so a test sees only its own.
    Short, because Chromium puts a Unix socket in it and a socket's path has at most 107 characters."""
    path = Path(tempfile.gettempdir()) / f"{SCRATCH_PREFIX}{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def own_tmpdir(folder: Path):
    """TMPDIR (and tempfile's) pointed at ``folder`` inside the block, as the demo server gives each build's
    demos: for demos run in this process, whose libraries leave files there (torch.compile's headers)."""
    folder.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        yield folder


@pytest.fixture
def demo_tmpdir():
    """A TMPDIR of the test's own (``own_tmpdir``), removed after it; a module-scoped fixture that runs a
    demo uses ``own_tmpdir`` itself.  Made as the demo server makes its own, not in ``tmp_path``: a
    DataLoader's workers put Unix sockets in it, and a socket's path is short."""
    from deck.runner import scratch_folder
    folder = Path(scratch_folder())
    try:
        with own_tmpdir(folder):
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- builds ---------------------------------------------------------------------------------------

def no_demo_may_run(monkeypatch) -> None:
    """From here on in this test, starting a demo server fails the test."""
    def refuse(server):
        raise AssertionError("a demo server was started")
    monkeypatch.setattr("deck.runner.DemoServer.start", refuse)


@dataclasses.dataclass
class Build:
    """What a build said and how it ended: subprocess.CompletedProcess's fields the tests read."""
    returncode: int
    stdout: str
    stderr: str
    root: Path | None = None


def ran(build) -> list[str]:
    """The demos a build ran, in order (from its progress lines)."""
    return re.findall(r"\[\d+/\d+\] (\S+) \.\.\.", build.stderr)


@contextlib.contextmanager
def environment_of_a_build(root: Path, environment: dict[str, str]):
    """TMPDIR (and any given variables) as run_build gives them, and the signal handlers build.main
    installs, for the length of an in-process build; restored after."""
    changes = {"TMPDIR": str(scratch_dir(root)), **environment}
    saved = {name: os.environ.get(name) for name in changes}
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    os.environ.update(changes)
    tempfile.tempdir = None
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tempfile.tempdir = None
        for number, handler in handlers.items():
            signal.signal(number, handler)


def build_here(root: Path, *args: str, **environment: str) -> Build:
    """build.main(["--root", ROOT, *ARGS]) in this process: the exit code and what it printed."""
    import build
    stdout, stderr = io.StringIO(), io.StringIO()
    with environment_of_a_build(root, environment), \
            contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = build.main(["--root", str(root), *args])
        except SystemExit as stop:                 # argparse's usage errors, a malformed pyproject.toml
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
            code = stop.code if isinstance(stop.code, int) else 1
    return Build(code, stdout.getvalue(), stderr.getvalue(), root)


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


# --- the fixture talk -----------------------------------------------------------------------------

def copy_of_fixture(folder: Path) -> Path:
    """The small fixture talk, with the real timing helper beside its demos."""
    root = folder / "talk"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "demos" / "_timing.py", root / "demos" / "_timing.py")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the small fixture talk, never built."""
    return copy_of_fixture(tmp_path)


@pytest.fixture(scope="session")
def fixture_build(tmp_path_factory) -> Build:
    """The fixture talk built once for the session (cold: every demo runs)."""
    root = copy_of_fixture(tmp_path_factory.mktemp("fixture-built"))
    built = build_here(root)
    assert built.returncode == 0, built.stderr
    return built


@pytest.fixture
def built_project(fixture_build: Build, tmp_path: Path) -> Path:
    """A copy of the built fixture talk, its cache and deck included: its rebuilds are warm."""
    root = tmp_path / "talk"
    shutil.copytree(fixture_build.root, root, symlinks=True)
    return root


# --- the real talk --------------------------------------------------------------------------------

def copy_of_talk(folder: Path) -> Path:
    """This repository's talk (slides, demos, templates, pyproject.toml) in a folder of its own, with an
    empty cache: its builds run every demo they need, and wait for no other build of the talk."""
    for part in ("slides", "demos", "templates"):
        shutil.copytree(REPO / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", folder)
    return folder


@dataclasses.dataclass
class TalkBuild:
    out: Path            # the deck: index.html, notes.html, assets/
    results: Path        # every result of the build, as --export-results writes them
    stderr: str

    def result(self, demo: str):
        """A demo's result as the build ran it (in its demo server, on the CPU, at --size small), for the
        tests of the demos that take longest: one run serves the deck's tests and theirs."""
        from deck.archive import read_archive
        return read_archive(self.results, "small")[demo, "{}"]


@pytest.fixture(scope="session")
def talk_build(tmp_path_factory) -> TalkBuild:
    """This repository's talk built once per session on the CPU at --size small (its cache is the talk's
    own .cache/, shared with `python build.py --size small --device cpu`)."""
    folder = tmp_path_factory.mktemp("talk")
    out, results = folder / "dist", folder / "results.tar"
    built = run_build(REPO, "--size", "small", "--device", "cpu", "--out", str(out), "--export-results", str(results),
                      timeout=1800)
    assert built.returncode == 0, built.stderr
    return TalkBuild(out, results, built.stderr)
