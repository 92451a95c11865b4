"""The run stage in-process, no demo server: cache keys, the result cache, staleness, the read log,
result checks, and how the runner acts on each kind of reply."""
import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time

import numpy
import pytest

from conftest import REPO, no_demo_may_run
from deck import runner
from deck.errors import BuildError
from deck.normalise import UnsupportedResult, checked
from deck.protocol import Problem, Reply, failed
from deck.readlog import ReadLog
from deck.references import Reference
from deck.result import NOT_A_FILE, DemoCall, Figure, Provenance, Result, Table, file_hash, from_json, to_json
from deck.runner import FileHashes, ResultCache, RunSettings, cache_key, remember, run_demos, run_now
from deck.runner import DEMO_FOLDER, SOCKET_ROOM, scratch_folder

PROVENANCE = Provenance("cpu", "cpu (test)", "2.13.0", "3.11", "2026-12-01T00:00:00+00:00", 0.5)


def a_result(value=1, reads=None) -> Result:
    return Result(values={"v": value}, provenance=PROVENANCE, reads=reads or {"demos/a.py": "0" * 64})


@pytest.fixture
def settings(tmp_path) -> RunSettings:
    (tmp_path / "demos").mkdir()
    return RunSettings(root=tmp_path, builder=tmp_path, cache_dir=tmp_path / ".cache", device="cpu")


# --- cache keys and the result cache --------------------------------------------------------------

def test_the_cache_key_covers_demo_arguments_size_device_torch_and_declared_environment(settings, monkeypatch):
    call = DemoCall("a.f", '{"n": 1}')
    key = cache_key(call, settings, "cpu", "2.13.0")
    assert key == cache_key(DemoCall("a.f", '{"n": 1}'), settings, "cpu", "2.13.0")
    others = {cache_key(DemoCall("a.g", '{"n": 1}'), settings, "cpu", "2.13.0"),
              cache_key(DemoCall("a.f", '{"n": 2}'), settings, "cpu", "2.13.0"),
              cache_key(call, RunSettings(**{**vars(settings), "size": "small"}), "cpu", "2.13.0"),
              cache_key(call, settings, "cuda", "2.13.0"), cache_key(call, settings, "cpu", "2.12.0")}
    assert key not in others and len(others) == 5
    declared = RunSettings(**{**vars(settings), "env": ("DECK_UNIT_LEVEL",)})
    monkeypatch.setenv("DECK_UNIT_LEVEL", "1")
    one = cache_key(call, declared, "cpu", "2.13.0")
    monkeypatch.setenv("DECK_UNIT_LEVEL", "2")
    assert cache_key(call, declared, "cpu", "2.13.0") != one
    assert cache_key(call, settings, "cpu", "2.13.0") == key      # undeclared variables are not in the key


def test_the_cache_gives_back_what_it_stored(tmp_path):
    cache = ResultCache(tmp_path)
    assert cache.load("k" * 32) is None
    cache.store("k" * 32, "a.f", a_result(7))
    assert cache.load("k" * 32) == a_result(7)


@pytest.mark.parametrize("damage", [
    lambda text: text[:40],                                                    # cut short
    lambda text: "[" * 100_000,                                                # nested past any recursion limit
    lambda text: text.replace('"format": 2', '"format": 1'),                   # another version
    lambda text: text.replace('"ran_at": "2026', '"ran_at": 5, "x": "'),       # a field of the wrong type
    lambda text: text.replace('"reads": {"demos/a.py"', '"reads": {"/etc/shadow"'),   # a read outside the talk
    lambda text: json.dumps({**json.loads(text), "result": {**json.loads(text)["result"], "provenance": None}}),
])
def test_a_damaged_cache_entry_is_removed_and_reported(tmp_path, capsys, damage):
    cache = ResultCache(tmp_path)
    cache.store("k" * 32, "a.f", a_result())
    path = cache.path("k" * 32)
    path.write_text(damage(path.read_text()))
    assert cache.load("k" * 32) is None
    assert not path.exists() and "discarding cache entry" in capsys.readouterr().err


# --- staleness: the current hash of what a result read --------------------------------------------

def test_a_result_is_current_while_what_it_read_is_unchanged(tmp_path):
    (tmp_path / "demos").mkdir()
    data = tmp_path / "demos" / "data.txt"
    data.write_text("1")
    result = a_result(reads={"demos/data.txt": file_hash(str(data)), "demos/missing.txt": ""})
    assert FileHashes(tmp_path).changed(result) == []
    data.write_text("2")
    assert FileHashes(tmp_path).changed(result) == ["demos/data.txt"]
    (tmp_path / "demos" / "missing.txt").write_text("now here")
    assert FileHashes(tmp_path).changed(result) == ["demos/data.txt", "demos/missing.txt"]
    assert FileHashes(tmp_path).changed(Result()) == ["(unknown)"]      # a result that recorded nothing


def test_a_path_that_leads_out_of_the_talk_or_is_no_regular_file_is_never_read(tmp_path):
    talk = tmp_path / "talk"
    (talk / "demos").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (talk / "demos" / "secret.txt").symlink_to(secret)
    (talk / "demos" / "zero").symlink_to("/dev/zero")
    os.mkfifo(talk / "demos" / "fifo")
    claims = {"demos/secret.txt": file_hash(str(secret)), "demos/zero": "0" * 64, "demos/fifo": "0" * 64}
    hashes = FileHashes(talk)
    assert hashes.changed(a_result(reads=claims)) == [
        "demos/secret.txt (leads out of the talk)", "demos/zero (leads out of the talk)",
        f"demos/fifo ({NOT_A_FILE})"]           # and it returns: the FIFO was not opened for a blocking read


# --- the read log, fed audit events directly ------------------------------------------------------

@pytest.fixture
def talk_files(tmp_path, monkeypatch):
    for name in ("demos", "slides", "out"):
        (tmp_path / name).mkdir()
    (tmp_path / "demos" / "data.txt").write_text("1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_read_log_hashes_what_was_read_when_it_was_read(talk_files):
    log = ReadLog(str(talk_files))
    log.audit("open", ("demos/data.txt", "r", os.O_RDONLY))
    log.audit("os.listdir", ("demos",))
    log.audit("open", ("/etc/hostname", "r", os.O_RDONLY))                 # outside the talk: not a dependency
    log.audit("open", (str(talk_files / "dist" / "x"), "r", os.O_RDONLY))  # the output: never a dependency
    recorded = log.dependencies()
    assert set(recorded) == {"demos/data.txt", "demos/"}
    assert log.changed() == []
    (talk_files / "demos" / "data.txt").write_text("2")                    # edited while the demo runs
    (talk_files / "demos" / "new.txt").write_text("")
    assert log.changed() == ["demos/", "demos/data.txt"]
    assert log.dependencies() == recorded                                  # still the content that was read


def test_what_a_demo_wrote_itself_is_not_a_dependency(talk_files):
    log = ReadLog(str(talk_files))
    log.audit("open", ("demos/made.pt", "wb", os.O_WRONLY | os.O_CREAT))
    (talk_files / "demos" / "made.pt").write_text("weights")
    log.audit("open", ("demos/made.pt", "rb", os.O_RDONLY))
    log.audit("os.remove", ("demos/made.pt", None))
    (talk_files / "demos" / "made.pt").unlink()
    assert log.dependencies() == {} and log.changed() == []


def test_what_lies_in_a_folder_the_demo_made_or_in_its_temporary_folder_is_its_own(talk_files):
    """torch.save writes from C, unseen by the hook; torch.load then reads it back in Python."""
    (talk_files / "tmp" / "server" / "d1").mkdir(parents=True)
    log = ReadLog(str(talk_files), scratch=str(talk_files / "tmp" / "server"))
    log.audit("os.mkdir", ("demos/run", 0o777, -1))
    (talk_files / "demos" / "run" / "sub").mkdir(parents=True)
    for written in ("demos/run/sub/model.pt", "tmp/server/d1/checkpoint.pt"):
        (talk_files / written).write_text("weights")
        log.audit("open", (written, "rb", os.O_RDONLY))
    log.audit("os.listdir", ("demos/run",))
    log.audit("open", ("demos/data.txt", "r", os.O_RDONLY))
    for written in ("demos/run/sub/model.pt", "tmp/server/d1/checkpoint.pt"):
        (talk_files / written).unlink()                                  # removed as the demo ends
    assert list(log.dependencies()) == ["demos/data.txt"] and log.changed() == []
    assert not log.own("demos/runner.py") and log.own("demos/run")


def test_a_file_handed_to_a_program_is_a_dependency(talk_files):
    log = ReadLog(str(talk_files))
    log.audit("subprocess.Popen", ("g++", ["g++", "demos/data.txt", "-o", "/tmp/x"], None, None))
    assert list(log.dependencies()) == ["demos/data.txt"]


@pytest.mark.parametrize("event, args", [
    ("open", ("slides/10-intro.md", "w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)),
    ("open", ("slides/10-intro.md", None, os.O_RDWR)),
    ("os.rename", ("demos/data.txt", "slides/10-intro.md", None, None)),
    ("os.remove", ("out/index.html", None)),
    ("shutil.rmtree", ("slides", None)),
    ("shutil.copyfile", ("demos/data.txt", "out/index.html")),
])
def test_writing_into_the_builds_folders_is_refused_and_recorded(talk_files, event, args):
    log = ReadLog(str(talk_files), protected=(str(talk_files / "slides"), str(talk_files / "out")))
    with pytest.raises(PermissionError):
        log.audit(event, args)
    assert log.refused and all(path.startswith(str(talk_files)) for path in log.refused)
    log.audit("open", ("demos/scratch.txt", "w", os.O_WRONLY | os.O_CREAT))   # elsewhere, writing is the demo's


# --- what a demo returns --------------------------------------------------------------------------

class Unsaveable:
    def savefig(self, *args, **kwargs):
        raise RuntimeError("no renderer")


@pytest.mark.parametrize("values, message", [
    ({"x": float("nan")}, "values.x: nan is not a finite number"),
    ({"x": float("inf")}, "values.x: inf is not a finite number"),
    ({"x": {"a": 1}}, "values['x'] is a builtins.dict"),
    ({"x": {1, 2}}, "values['x'] is a builtins.set"),
    ({"x": numpy.arange(3)}, "values['x'] is a numpy.ndarray"),
    ({"x": "y" * (2 << 20)}, "values.x: a string of 2097152 characters, over the limit of 1048576"),
    ({"x": "\ud800"}, "values.x: not text (a lone surrogate"),
    ({1: 2}, "values has the key 1, not a string"),
    ({"x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}, "values['x'][0][0]"),
])
def test_a_value_that_cannot_be_stored_names_the_demo_and_the_key(values, message):
    with pytest.raises(UnsupportedResult) as caught:
        checked(Result(values=values), "m.demo")
    assert "demo m.demo" in str(caught.value) and message in str(caught.value)


def test_numbers_of_any_kind_become_plain_numbers():
    result = checked(Result(values={"i": numpy.int64(3), "f": numpy.float32(0.5), "t": (1, 2.5)}), "m.demo")
    assert result.values == {"i": 3, "f": 0.5, "t": [1, 2.5]}
    assert [type(v) for v in result.values.values()] == [int, float, list]
    assert from_json(json.loads(json.dumps(to_json(result)))) == result   # what is stored reads back


def test_a_figure_that_fails_to_save_names_the_demo_and_the_figure():
    with pytest.raises(UnsupportedResult) as caught:
        checked(Result(figures=[Figure(Unsaveable(), alt="x")]), "m.demo")
    assert str(caught.value) == "demo m.demo: figures[0] could not be saved as SVG: RuntimeError: no renderer"


def test_tables_and_timings_must_be_what_they_say():
    with pytest.raises(UnsupportedResult, match=r"demo m.demo: tables\[0\] is not columns and rows"):
        checked(Result(tables=[Table(["a"], 5)]), "m.demo")
    with pytest.raises(UnsupportedResult, match=r"timings\['t'\] is a float, not a Timing"):
        checked(Result(timings={"t": 0.5}), "m.demo")
    with pytest.raises(UnsupportedResult, match="returned a builtins.int"):
        checked(42, "m.demo")


# --- how the runner acts on replies (a stand-in server) -------------------------------------------

class ScriptedServer:
    """Answers each run with the next reply of a script, and records what it was asked."""

    def __init__(self, *replies: Reply):
        self.replies = list(replies)
        self.asked: list[str] = []

    def run(self, call: DemoCall, timeout: float) -> Reply:
        self.asked.append(call.demo)
        return self.replies.pop(0)


CALL = DemoCall("a.f")


def with_server(settings: RunSettings, server: ScriptedServer) -> RunSettings:
    return dataclasses.replace(settings, server=server)


def references() -> list[Reference]:
    return [Reference(call=CALL, target="a.f", file="slides/10-a.md", line=3, slide=2)]


def test_run_now_reports_each_kind_of_failure_by_its_kind_and_stores_nothing(settings, capsys):
    replies = [failed(Problem.TIMED_OUT, "3 s"), failed(Problem.CRASHED, "killed by SIGSEGV"),
               failed(Problem.RAISED, "ValueError: x", "Traceback ..."),
               failed(Problem.UNSUPPORTED_RESULT, "demo a.f: values['x'] is a builtins.set"),
               failed(Problem.WROTE_PROTECTED, "/talk/slides/10-a.md"), failed(Problem.SERVER_GONE, "no reply")]
    expected = ["timed out after 3 s", "crashed: its process ended (killed by SIGSEGV)",
                "raised an exception:\nTraceback ...", "cannot be stored:\ndemo a.f: values['x'] is a builtins.set",
                "tried to change /talk/slides/10-a.md", "the demo server stopped answering (no reply)"]
    for reply, words in zip(replies, expected):
        result = run_now([CALL], references(), with_server(settings, ScriptedServer(reply)))[CALL]
        assert result.failed and "slides/10-a.md:3: demo a.f" in result.error and words in result.error
    timed_out = run_now([CALL], references(), with_server(settings, ScriptedServer(replies[0])))[CALL]
    assert '[tool.deck.timeouts] "a.f"' in timed_out.error
    assert not (settings.cache_dir / "results").exists()


def test_every_kind_of_problem_has_its_wording():
    assert set(runner.PROBLEMS) == set(Problem)


def test_a_device_this_machine_lacks_stops_the_build_once_even_with_keep_going(settings):
    server = ScriptedServer(failed(Problem.DEVICE_UNAVAILABLE, "--device cuda: this torch build sees no CUDA device"))
    with pytest.raises(BuildError, match="^--device cuda: this torch build sees no CUDA device$"):
        run_now([CALL, DemoCall("a.g")], references(), with_server(settings, server))
    assert server.asked == ["a.f"]


def test_a_result_whose_files_changed_while_it_ran_is_dropped_and_run_again(settings):
    server = ScriptedServer(failed(Problem.CHANGED_WHILE_RUNNING, "demos/data.txt"), Reply(result=a_result(2)))
    assert run_now([CALL], references(), with_server(settings, server)) == {CALL: a_result(2)}
    assert server.asked == ["a.f", "a.f"]
    twice = ScriptedServer(*[failed(Problem.CHANGED_WHILE_RUNNING, "demos/data.txt")] * 2)
    result = run_now([CALL], references(), with_server(settings, twice))[CALL]
    assert "read demos/data.txt, which changed while it ran, twice" in result.error


def test_without_keep_going_a_failure_stops_the_build_at_its_slide(settings, monkeypatch):
    monkeypatch.setattr(runner, "DemoServer", lambda *a: ScriptedServerContext(failed(Problem.CRASHED, "exit 3")))
    with pytest.raises(BuildError) as caught:
        run_demos([CALL], references(), settings)
    assert caught.value.location == "slides/10-a.md:3" and "demo a.f crashed" in caught.value.message


class ScriptedServerContext(ScriptedServer):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_remembered_results_are_what_the_next_build_shows(settings, monkeypatch):
    (settings.root / "demos" / "a.py").write_text("")
    fresh = a_result(5, reads={"demos/a.py": file_hash(str(settings.root / "demos" / "a.py"))})
    remember({CALL: fresh, DemoCall("a.g"): Result(error="it failed")}, settings)
    assert len(list((settings.cache_dir / "results").iterdir())) == 1   # failures are not stored
    no_demo_may_run(monkeypatch)
    assert run_demos([CALL], references(), settings) == {CALL: fresh}


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_where_the_demo_server_cannot_fork_the_build_says_so_once(settings, monkeypatch, platform):
    monkeypatch.setattr(runner, "why_demos_cannot_run",
                        lambda: __import__("deck.supervise").supervise.why_demos_cannot_run(platform))
    no_demo_may_run(monkeypatch)
    with pytest.raises(BuildError) as caught:
        run_now([CALL, DemoCall("a.g")], references(), settings)
    assert str(caught.value).count("cannot run here") == 1 and "2 demo(s) need to run" in str(caught.value)
    assert "--results FILE.tar" in str(caught.value)
    remember({}, settings)   # nothing to run, nothing refused


# --- a file edited while its demo runs (a real demo server: slow) --------------------------------

WAITS = '''
import os, time
from pathlib import Path
from deck.result import Result


def waits(device, size="full"):
    """Read a data file, then wait for the test's signal file before returning what was read."""
    value = Path("demos/data.txt").read_text()
    started = Path(os.environ["DECK_TEST_STARTED"])
    started.write_text(started.read_text() + "x" if started.exists() else "x")
    while not Path(os.environ["DECK_TEST_GO"]).exists():
        time.sleep(0.01)
    return Result(values={"v": value})
'''


@pytest.mark.slow
@pytest.mark.parametrize("edited", ["demos/data.txt", "demos/waits.py"])
def test_a_file_edited_while_its_demo_runs_is_never_cached_with_the_old_value(tmp_path, monkeypatch, capsys, edited):
    talk = tmp_path / "talk"
    (talk / "demos").mkdir(parents=True)
    (talk / "demos" / "__init__.py").write_text("")
    (talk / "demos" / "waits.py").write_text(WAITS)
    (talk / "demos" / "data.txt").write_text("before")
    started, go = tmp_path / "started", tmp_path / "go"
    monkeypatch.setenv("DECK_TEST_STARTED", str(started))
    monkeypatch.setenv("DECK_TEST_GO", str(go))
    settings = RunSettings(root=talk, builder=REPO, cache_dir=talk / ".cache", device="cpu", timeout_s=60)
    call = DemoCall("waits.waits")
    where = [Reference(call=call, target="waits.waits", file="slides/10-a.md", line=1, slide=1)]

    def edit_while_it_runs():
        while not started.exists():
            time.sleep(0.01)
        path = talk / edited
        path.write_text(path.read_text().replace("before", "after") + "\n# edited\n")
        go.write_text("")
    editor = threading.Thread(target=edit_while_it_runs)
    editor.start()
    result = run_demos([call], where, settings)[call]
    editor.join()
    assert started.read_text() == "xx"                                    # it ran twice
    assert "changed while it ran; running it again" in capsys.readouterr().err
    expected = "after\n# edited\n" if edited == "demos/data.txt" else "before"
    assert result.values == {"v": expected}
    for path, digest in result.reads.items():                             # hashes of the content it ran on
        assert digest == file_hash(str(talk / path)), path
    no_demo_may_run(monkeypatch)
    assert run_demos([call], where, settings)[call] == result             # and the next build keeps it


MISBEHAVES = '''
import os, shutil
from pathlib import Path
from deck.result import Figure, Result


def writes_a_slide(device, size="full"):
    Path("slides/10-a.md").write_text("hijacked")


def replaces_the_deck(device, size="full"):
    Path("demos/index.html").write_text("fake")
    os.replace("demos/index.html", os.environ["DECK_TEST_OUT"] + "/index.html")
    return Result(values={"done": True})


def removes_the_templates(device, size="full"):
    try:
        shutil.rmtree("templates")
    except PermissionError:
        pass   # swallowing the refusal does not hide it
    return Result(values={"done": True})


def returns_nan(device, size="full"):
    return Result(values={"loss": float("nan")})


def returns_a_surrogate(device, size="full"):
    return Result(values={"text": "\\ud800"})


def reads_an_odd_name(device, size="full"):
    return Result(values={"v": Path("demos/a" + chr(92) + "b.txt").read_text()})   # a backslash in its name


def returns_a_broken_figure(device, size="full"):
    import matplotlib.pyplot as plt
    figure = plt.figure()
    figure.savefig = None
    return Result(figures=[Figure(figure, alt="x")])
'''


@pytest.mark.slow
def test_misbehaving_demos_are_reported_by_name_and_nothing_is_cached_or_touched(tmp_path, monkeypatch):
    talk = tmp_path / "talk"
    for folder in ("demos", "slides", "templates", "dist"):
        (talk / folder).mkdir(parents=True)
    (talk / "demos" / "__init__.py").write_text("")
    (talk / "demos" / "bad.py").write_text(MISBEHAVES)
    (talk / "slides" / "10-a.md").write_text("mine")
    (talk / "demos" / "a\\b.txt").write_text("odd")
    (talk / "templates" / "deck.css").write_text("mine")
    monkeypatch.setenv("DECK_TEST_OUT", str(talk / "dist"))
    settings = RunSettings(root=talk, builder=REPO, cache_dir=talk / ".cache", device="cpu", timeout_s=60)
    expected = {"writes_a_slide": f"tried to change {talk}/slides/10-a.md, which belongs to the build",
                "replaces_the_deck": f"tried to change {talk}/dist/index.html",
                "removes_the_templates": f"tried to change {talk}/templates",
                "returns_nan": "values.loss: nan is not a finite number",
                "returns_a_surrogate": "values.text: not text (a lone surrogate",
                "reads_an_odd_name": "cannot be stored: reply.result.reads: not a path inside the talk: 'demos/a\\\\b.txt'",
                "returns_a_broken_figure": "demo bad.returns_a_broken_figure: figures[0] could not be saved as SVG"}
    calls = [DemoCall(f"bad.{name}") for name in expected]
    where = [Reference(call=call, target=call.demo, file="slides/10-a.md", line=1, slide=1) for call in calls]
    with runner.DemoServer(settings) as server:
        results = run_now(calls, where, with_server(settings, server))
        again = run_now(calls[:1], where, with_server(settings, server))     # the same server, kept open
    for call, words in zip(calls, expected.values()):
        assert words in results[call].error and "Traceback" not in results[call].error, results[call].error
    assert again[calls[0]].failed
    assert (talk / "slides" / "10-a.md").read_text() == "mine" and (talk / "templates" / "deck.css").exists()
    assert list((talk / "dist").iterdir()) == [] and not (talk / ".cache" / "results").exists()


# --- the demos' scratch folder ---------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 90])
def test_the_demos_scratch_folder_leaves_room_for_the_sockets_put_in_it(monkeypatch, length):
    """A DataLoader's workers put Unix sockets in TMPDIR; under a long TMPDIR they could not, and it hangs."""
    parent = tempfile.mkdtemp(prefix="t", dir="/tmp")
    given = os.path.join(parent, "x" * length)
    os.mkdir(given)
    monkeypatch.setattr(tempfile, "tempdir", given)
    folder = scratch_folder()
    try:
        assert len(folder + DEMO_FOLDER) <= SOCKET_ROOM and os.path.isdir(folder)
        assert (os.path.dirname(folder) == given) == (length == 1)   # inside TMPDIR whenever it fits
    finally:
        shutil.rmtree(parent), shutil.rmtree(folder, ignore_errors=True)
