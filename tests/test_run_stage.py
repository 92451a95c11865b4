"""The run stage: every slide shows the current result, results depend on exactly what their demo read,
demos cannot affect each other, and no process or temporary folder outlives the build."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, build_here, no_demo_may_run, run_build, scratch_dir, start_build
from deck.errors import BuildError
from deck.files import write_file


def slide(timing: int, text: str) -> str:
    return f"<!-- .slide: timing={timing} -->\n{text}\n\nNote:\nx\n"


def talk(project: Path, slides: dict[str, str], demos: dict[str, str], pyproject: str = "") -> None:
    """Replace the fixture talk's slides and demos."""
    for old in (project / "slides").glob("*.md"):
        old.unlink()
    for name, text in slides.items():
        (project / "slides" / name).write_text(text)
    for name, text in demos.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if pyproject:
        (project / "pyproject.toml").write_text(pyproject)


def ran(build) -> list[str]:
    """The demos a build ran, in order."""
    assert build.returncode == 0, build.stderr
    return re.findall(r"\[\d+/\d+\] (\S+) \.\.\.", build.stderr)


# --- slides keyed by what they show ---------------------------------------------------------------

LUCKY = '''
import secrets
from deck.result import Result


def lucky(device, size="full"):
    return Result(values={"number": secrets.randbelow(10**12)})
'''


def shown_numbers(project: Path, out: str = "dist") -> list[str]:
    return re.findall(r"lucky number (\d+)", (project / out / "index.html").read_text())


@pytest.fixture
def lucky_talk(project):
    shows = 'lucky number {{ result("rnd.lucky").number }}'
    talk(project, {"10-a.md": slide(10, f"## One\n\n{shows}"), "20-b.md": slide(10, f"## Two\n\n{shows}")},
         {"demos/rnd.py": LUCKY})
    assert ran(build_here(project)) == ["rnd.lucky"]
    return project


@pytest.mark.slow
def test_every_slide_shows_the_new_value_after_each_rerun_path(lucky_talk, tmp_path):
    project = lucky_talk
    seen = [shown_numbers(project)]
    assert len(seen[0]) == 2 and seen[0][0] == seen[0][1]

    assert ran(build_here(project, "--rerun", "rnd.lucky")) == ["rnd.lucky"]
    seen.append(shown_numbers(project))
    (project / "slides" / "10-a.md").write_text((project / "slides" / "10-a.md").read_text() + "\nMore prose.\n")
    assert ran(build_here(project)) == []                    # a prose edit re-renders one slide, runs nothing
    assert shown_numbers(project) == seen[-1]

    assert ran(build_here(project, "--fresh")) == ["rnd.lucky"]
    seen.append(shown_numbers(project))

    entry = next((project / ".cache" / "deck" / "results").glob("*.json"))
    entry.write_text(entry.read_text()[:50])                # a damaged entry is discarded, the demo reruns
    assert ran(build_here(project)) == ["rnd.lucky"]
    seen.append(shown_numbers(project))

    archive = tmp_path / "elsewhere.tar"                    # results made by another build of the talk
    other = tmp_path / "other"
    subprocess.run(["cp", "-r", str(project), str(other)], check=True)
    assert ran(build_here(other, "--fresh", "--export-results", str(archive))) == ["rnd.lucky"]
    assert ran(build_here(project, "--results", str(archive))) == []
    seen.append(shown_numbers(project))
    assert seen[-1] == shown_numbers(other)

    for numbers in seen:
        assert numbers[0] == numbers[1]                     # both slides always show the same value
    assert len({numbers[0] for numbers in seen}) == len(seen)   # and every path showed a new one


@pytest.mark.slow
def test_a_cache_entry_of_the_wrong_shape_is_discarded_and_rerun(lucky_talk):
    project = lucky_talk
    entry = next((project / ".cache" / "deck" / "results").glob("*.json"))
    data = json.loads(entry.read_text())
    data["result"]["provenance"]["ran_at"] = 5
    entry.write_text(json.dumps(data))
    build = build_here(project)
    assert ran(build) == ["rnd.lucky"]
    assert "discarding cache entry" in build.stderr and "result.provenance.ran_at: expected a str, got 5" in build.stderr


# --- dependencies from what ran -------------------------------------------------------------------

DEPENDENCIES = {
    "demos/a.py": "from deck.result import Result\n\n\ndef sibling(device, size='full'):\n"
                  "    from . import b\n    return Result(values={'v': b.VALUE})\n",
    "demos/b.py": "VALUE = 1\n",
    "demos/c.py": "import importlib\nfrom deck.result import Result\n\n\ndef loaded(device, size='full'):\n"
                  "    return Result(values={'v': importlib.import_module('demos.plugin').VALUE})\n",
    "demos/plugin.py": "VALUE = 1\n",
    "demos/d.py": "from pathlib import Path\nfrom deck.result import Result\n\n\ndef nested(device, size='full'):\n"
                  "    return Result(values={'v': Path('demos/data/nested.txt').read_text()})\n",
    "demos/data/nested.txt": "1",
    "demos/e.py": "from deck.result import Result\n\n\ndef shared_one(device, size='full'):\n"
                  "    return Result(values={'v': open('demos/shared.txt').read()})\n",
    "demos/f.py": "from pathlib import Path\nfrom deck.result import Result\n\n\ndef shared_two(device, size='full'):\n"
                  "    return Result(values={'v': (Path(__file__).parent / 'shared.txt').read_text()})\n",
    "demos/shared.txt": "1",
    "demos/_helper.py": "import json\nfrom pathlib import Path\n\n\ndef load():\n"
                        "    return json.loads(Path(__file__).with_name('_helper.json').read_text())\n",
    "demos/_helper.json": "1",
    "demos/g.py": "from deck.result import Result\nfrom demos._helper import load\n\n\ndef helped(device, size='full'):\n"
                  "    return Result(values={'v': load()})\n",
    "talkconfig.py": "VALUE = 1\n",
    "demos/h.py": "from deck.result import Result\n\n\ndef rooted(device, size='full'):\n"
                  "    import talkconfig\n    return Result(values={'v': talkconfig.VALUE})\n",
    "demos/i.py": "import os\nfrom deck.result import Result\n\n\ndef environment(device, size='full'):\n"
                  "    return Result(values={'v': os.environ.get('DECK_TEST_LEVEL', '')})\n",
}
ENV_DECLARED = '[tool.deck]\nenv = ["DECK_TEST_LEVEL"]\npreload = []\n'   # the fixture's preload, kept
EVERY_DEMO = ["a.sibling", "c.loaded", "d.nested", "e.shared_one", "f.shared_two", "g.helped", "h.rooted",
              "i.environment"]


EDITS = [                                                 # (file edited, demos that must rerun)
    ("demos/b.py", ["a.sibling"]),                        # a sibling imported as `from . import b`
    ("demos/plugin.py", ["c.loaded"]),                    # a module loaded with importlib
    ("demos/data/nested.txt", ["d.nested"]),              # a data file in a subfolder of demos/
    ("demos/shared.txt", ["e.shared_one", "f.shared_two"]),   # a data file shared by two modules
    ("demos/_helper.json", ["g.helped"]),                 # a helper's own data file
    ("talkconfig.py", ["h.rooted"]),                      # a module at the talk's root
    ("demos/a.py", ["a.sibling"]),                        # the demo's own module
    ("slides/10-all.md", []),                             # prose
]


@pytest.mark.slow
def test_editing_what_a_demo_read_reruns_exactly_the_demos_that_read_it(project):
    slides = {"10-all.md": slide(10, "## All\n\n" + "\n\n".join(
        f'{name}: {{{{ result("{name}").v }}}}' for name in EVERY_DEMO))}
    talk(project, slides, DEPENDENCIES, pyproject=ENV_DECLARED)
    assert sorted(ran(build_here(project))) == EVERY_DEMO
    for edited, rerun in EDITS:
        path = project / edited
        path.write_text(path.read_text().replace("1", "2") + "\n")
        assert (edited, sorted(ran(build_here(project)))) == (edited, rerun)
        assert (edited, ran(build_here(project))) == (edited, [])   # and then it is current again
        if "1" in DEPENDENCIES.get(edited, ""):
            assert f"{rerun[0]}: 2" in (project / "dist" / "index.html").read_text()


@pytest.mark.slow
def test_declared_environment_variables_are_part_of_the_key(project):
    talk(project, {"10-env.md": slide(10, '## Env\n\nlevel {{ result("i.environment").v }}')},
         {"demos/i.py": DEPENDENCIES["demos/i.py"]}, pyproject=ENV_DECLARED)
    assert ran(build_here(project, DECK_TEST_LEVEL="3")) == ["i.environment"]
    assert "level 3" in (project / "dist" / "index.html").read_text()
    assert ran(build_here(project, DECK_TEST_LEVEL="3")) == []
    assert ran(build_here(project, DECK_TEST_LEVEL="4")) == ["i.environment"]
    assert "level 4" in (project / "dist" / "index.html").read_text()


# --- demos cannot affect each other ---------------------------------------------------------------

STATE = '''
import os, sys, tempfile
from deck.result import Result


def spoil(device, size="full"):
    """Change every piece of global state a demo could leak."""
    import matplotlib, numpy, torch
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(1234)
    numpy.random.seed(1234)
    os.chdir("/")
    os.environ["DECK_SPOILED"] = "yes"
    sys.path.insert(0, "/spoiled")
    matplotlib.rcParams["lines.linewidth"] = 9
    open(os.path.join(tempfile.gettempdir(), "spoiled.txt"), "w").close()
    return Result(values={"spoiled": True})


def report(device, size="full"):
    """What the global state is when a demo starts."""
    import matplotlib, torch
    return Result(values={
        "sum": (torch.tensor(0.1) * 3).item(), "dtype": str(torch.get_default_dtype()),
        "grad": torch.is_grad_enabled(), "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(), "random": torch.rand(1).item(),
        "cwd": os.getcwd(), "env": os.environ.get("DECK_SPOILED", ""), "path": "/spoiled" in sys.path,
        "linewidth": matplotlib.rcParams["lines.linewidth"], "tmp": os.listdir(tempfile.gettempdir())})
'''


@pytest.mark.slow
def test_a_demo_sees_the_same_state_after_other_demos_as_alone(project):
    values = "\n\n".join(f'{name}={{{{ result("state.report").{name} }}}}' for name in
                         ("sum", "dtype", "grad", "threads", "deterministic", "random", "cwd", "env", "path",
                          "linewidth", "tmp"))
    talk(project, {"10-spoil.md": slide(10, '## Spoil\n\n{{ result("state.spoil").spoiled }}'),
                   "20-report.md": slide(10, f"## Report\n\n{values}")}, {"demos/state.py": STATE})
    assert ran(build_here(project)) == ["state.spoil", "state.report"]
    after_others = re.findall(r"<p>(\w+=[^<]*)</p>", (project / "dist" / "index.html").read_text())
    assert ran(build_here(project, "--rerun", "state.report")) == ["state.report"]
    alone = re.findall(r"<p>(\w+=[^<]*)</p>", (project / "dist" / "index.html").read_text())
    assert after_others == alone and len(alone) == 11
    assert "tmp=[]" in alone                                     # an empty TMPDIR of its own, every time
    assert "sum=0.30000001192092896" in alone and "dtype=torch.float32" in alone and "env=" in alone
    assert f"cwd={project}" in alone and "path=False" in alone and "grad=True" in alone


PRELOADED = '''
import sys
from deck.result import Result


def preloaded(device, size="full"):
    return Result(values={"modules": [name for name in ("matplotlib.pyplot", "torch._dynamo") if name in sys.modules]})
'''


@pytest.mark.slow
def test_the_demo_server_preloads_the_modules_the_talk_names(project):
    talk(project, {"10-p.md": slide(10, '## Preloaded\n\n{{ result("p.preloaded").modules | join(" and ") }}.')},
         {"demos/p.py": PRELOADED}, pyproject='[tool.deck]\npreload = ["matplotlib.pyplot"]\n')
    assert ran(build_here(project)) == ["p.preloaded"]
    assert "<p>matplotlib.pyplot.</p>" in (project / "dist" / "index.html").read_text()
    (project / "pyproject.toml").write_text('[tool.deck]\npreload = ["matplotlib.pyplott"]\n')
    failed = run_build(project, "--rerun", "p.preloaded")   # a process: all it and its server printed
    assert failed.returncode == 1
    reason = "[tool.deck] preload: cannot import matplotlib.pyplott: No module named 'matplotlib.pyplott'"
    assert f"the demo server could not start: {reason}" in failed.stderr   # the build's error says why
    assert failed.stderr.count(reason) == 1, failed.stderr


@pytest.mark.slow
def test_device_auto_is_found_by_the_demo_server_and_remembered(project, monkeypatch):
    """A cold build imports torch once, in its demo server, which also says what ``auto`` means here."""
    started = []
    popen = subprocess.Popen.__init__
    monkeypatch.setattr(subprocess.Popen, "__init__", lambda self, args, *a, **k: started.append(args) or
                        popen(self, args, *a, **k))
    cold = build_here(project)
    assert cold.returncode == 0 and "4 to run on cpu" in cold.stderr, cold.stderr
    assert [args[1:3] for args in started] == [["-m", "deck.worker"]]
    assert json.loads((project / ".cache" / "deck" / "device-auto.json").read_text())["device"] == "cpu"
    no_demo_may_run(monkeypatch)
    warm = build_here(project)
    assert warm.returncode == 0 and "4 needed, 4 cached, 0 to run on cpu" in warm.stderr, warm.stderr


# --- processes never outlive the build ------------------------------------------------------------

LINGERING = '''
import os, subprocess, sys, time
from pathlib import Path
from deck.result import Result


def lingers(device, size="full"):
    """Start a child in a new session and a double-forked daemon, write their pids, then hang."""
    pids = [subprocess.Popen(["sleep", "600"], start_new_session=True).pid]
    reader, writer = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(writer, f"{os.getpid()}\\n".encode())
            time.sleep(600)
        os._exit(0)
    pids.append(int(os.read(reader, 64)))
    pids.append(os.getpid())
    Path(os.environ["DECK_TEST_PIDS"]).write_text(" ".join(map(str, pids)))
    time.sleep(600)


def leaves_a_child_holding_its_output(device, size="full"):
    if os.fork() == 0:
        time.sleep(600)
    os._exit(3)


def closes_its_streams(device, size="full"):
    os.close(0), os.close(1), os.close(2)
    return Result(values={"closed": True})
'''


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["SIGKILL", "SIGTERM", "SIGHUP", "SIGINT"])
def test_nothing_outlives_the_builder(project, ending):
    talk(project, {"10-linger.md": slide(10, '## Linger\n\n{{ demo("linger.lingers") }}')},
         {"demos/linger.py": LINGERING})
    pid_file = project.parent / "pids"
    build = start_build(project, DECK_TEST_PIDS=str(pid_file))
    deadline = time.monotonic() + 120
    while not pid_file.exists() or len(pid_file.read_text().split()) < 3:
        assert time.monotonic() < deadline and build.poll() is None, build.stderr.read()
        time.sleep(0.1)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert all(alive(pid) for pid in pids)
    build.send_signal(getattr(signal, ending))
    ended = time.monotonic()
    while any(alive(pid) for pid in pids) and time.monotonic() - ended < 2:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)]
    build.wait(timeout=10)
    while list(scratch_dir(project).glob("demos-*")) and time.monotonic() - ended < 2:
        time.sleep(0.05)
    assert list(scratch_dir(project).glob("demos-*")) == []   # the server's scratch folder is gone


SLOW_IMPORT = '''
import os
from pathlib import Path

Path(os.environ["DECK_TEST_PIDS"]).write_text(str(os.getpid()))
total = sum(range(10 ** 11))   # one long call into C, as loading a big library is: no Python handler runs in it
'''


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["Ctrl-C", "SIGTERM"])
def test_a_stop_while_the_demo_server_imports_ends_it_at_once(project, stop):
    talk(project, {"10-a.md": slide(10, '## A\n\n{{ result("arith.tensor_sum").total }}')}, {"demos/slow.py": SLOW_IMPORT},
         pyproject='[tool.deck]\npreload = ["demos.slow"]\n')
    pid_file = project.parent / "pid"
    build = start_build(project, DECK_TEST_PIDS=str(pid_file))
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and build.poll() is None, build.stderr.read()
        time.sleep(0.05)
    server = int(pid_file.read_text())
    started = time.monotonic()
    build.send_signal(signal.SIGINT if stop == "Ctrl-C" else signal.SIGTERM)
    if stop == "Ctrl-C":
        os.kill(server, signal.SIGINT)     # the terminal sends it to every process of the foreground group
    build.wait(timeout=10)
    while alive(server) and time.monotonic() - started < 1:
        time.sleep(0.02)
    assert not alive(server) and time.monotonic() - started < 1
    assert build.returncode == 130 and "interrupted: the previous deck is untouched" in build.stderr.read()
    assert list(scratch_dir(project).glob("demos-*")) == []   # its folder is removed by the builder


@pytest.mark.slow
def test_at_its_timeout_a_demo_is_killed_with_every_process_it_started(project):
    talk(project, {"10-linger.md": slide(10, '## Linger\n\n{{ demo("linger.lingers") }}')},
         {"demos/linger.py": LINGERING})
    pid_file = project.parent / "pids"
    build = build_here(project, "--timeout", "8", DECK_TEST_PIDS=str(pid_file))
    assert build.returncode == 1 and "demo linger.lingers timed out after 8 s" in build.stderr
    assert not [pid for pid in map(int, pid_file.read_text().split()) if alive(pid)]


@pytest.mark.slow
def test_a_demo_that_exits_leaving_a_child_is_reported_at_once(project):
    talk(project, {"10-x.md": slide(10, '## X\n\n{{ demo("linger.leaves_a_child_holding_its_output") }}')},
         {"demos/linger.py": LINGERING})
    started = time.monotonic()
    build = build_here(project, "--timeout", "60")
    assert build.returncode == 1 and "crashed: its process ended (exit status 3)" in build.stderr
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_a_demo_that_closes_its_streams_affects_only_itself(project):
    talk(project, {"10-x.md": slide(10, '## X\n\n{{ result("linger.closes_its_streams").closed }}\n\n'
                                         '{{ demo("words.shout") }}')}, {"demos/linger.py": LINGERING})
    assert ran(build_here(project)) == ["linger.closes_its_streams", "words.shout"]
    assert "HELLO FROM CPU" in (project / "dist" / "index.html").read_text()


# --- clear errors ---------------------------------------------------------------------------------

def test_a_full_disk_while_writing_the_cache_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(BuildError) as caught:
        write_file(tmp_path / "results" / "entry.json", "x" * 1000)
    assert str(caught.value) == (f"cannot write {tmp_path / 'results' / 'entry.json'}: No space left on device "
                                 "(the disk is full)")
    assert list((tmp_path / "results").iterdir()) == []


def test_demos_import_nothing_of_the_builder_but_its_result_types():
    for path in (REPO / "demos").glob("*.py"):
        imported = re.findall(r"^\s*(?:from|import) (deck\S*)", path.read_text(), re.M)
        assert set(imported) <= {"deck.result"}, (path.name, imported)
    check = subprocess.run([sys.executable, "-c", "import sys, deck.result; "
                            "print(sorted(m for m in sys.modules if m.startswith(('deck', 'torch', 'matplotlib', "
                            "'jinja2', 'markdown'))))"], cwd=REPO, capture_output=True, text=True)
    assert check.stdout.strip() == "['deck', 'deck.result']", check.stderr
