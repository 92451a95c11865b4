"""A results archive is data, never instructions: hostile archives, built here with tarfile, are refused
with the member and field named, read with bounded memory, and never make the builder open a path
outside the talk or one that is not a regular file."""
import io
import json
import os
import tarfile

import pytest

from deck import archive as archives
from deck import runner
from deck.archive import read_archive
from deck.errors import BuildError
from deck.result import FORMAT, DemoCall, Provenance, Result, file_hash, to_json
from deck.runner import RunSettings, run_demos

from conftest import no_demo_may_run

PROVENANCE = Provenance("cuda", "cuda (test)", "2.13.0", "3.11", "2026-12-01T00:00:00+00:00", 0.5)


def entry(demo="a.f", reads=None, **result_changes) -> dict:
    result = to_json(Result(values={"v": 1}, provenance=PROVENANCE, reads=reads or {"demos/a.py": "0" * 64}))
    result.update(result_changes)
    return {"format": FORMAT, "demo": demo, "args_json": "{}", "size": "full", "result": result}


def write_archive(path, *members) -> None:
    """Members as (name, dict | bytes) or ready TarInfos with their data."""
    with tarfile.open(path, "w") as tar:
        for name, content in members:
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def refusal(tmp_path, *members) -> str:
    path = tmp_path / "hostile.tar"
    write_archive(path, *members)
    with pytest.raises(BuildError) as caught:
        read_archive(path, "full")
    return str(caught.value)


@pytest.mark.parametrize("path", ["/etc/shadow", "/dev/zero", "../secret.txt", "demos/../../secret.txt",
                                  "demos//a.py", "demos/./a.py", "", "demos\\..\\x", "demos/a\0.py"])
def test_a_read_outside_the_talk_or_oddly_spelt_is_refused(tmp_path, path):
    message = refusal(tmp_path, ("results/0000.json", entry(reads={path: "0" * 64})))
    assert message.startswith("hostile.tar:results/0000.json: result.reads: not a path inside the talk")


@pytest.mark.parametrize("change, message", [
    (dict(values={f"v{i}": i for i in range(1001)}), "result.values: more than 1000 items"),
    (dict(figures=[{"alt": "", "svg": ""}] * 101), "result.figures: more than 100 items"),
    (dict(tables=[{"columns": [], "rows": [], "caption": ""}] * 101), "result.tables: more than 100 items"),
    (dict(reads={f"demos/{i}.py": "" for i in range(10_001)}), "result.reads: more than 10000 items"),
    (dict(values={"v": "x" * ((1 << 20) + 1)}), "result.values.v: a string of 1048577 characters, over the limit"),
    (dict(values={"v": "\ud800"}), "result.values.v: not text"),
    (dict(values={"v": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}), "result.values.v[0][0]"),
    (dict(measured={"v": float("nan")}), "result.measured.v: nan is not a finite number"),
    (dict(provenance=None), "result.provenance: missing"),
    (dict(error="it failed"), "result.error: an archive holds results, not failures"),
])
def test_every_field_is_bounded_and_checked(tmp_path, change, message):
    assert message in refusal(tmp_path, ("results/0000.json", entry(**change)))


def test_nesting_past_any_recursion_limit_is_refused(tmp_path):
    deep = b'{"format": 2, "demo": "a.f", "args_json": "{}", "size": "full", "result": ' + b"[" * 200_000
    assert refusal(tmp_path, ("results/0000.json", deep)) == \
        "hostile.tar:results/0000.json: the member: nested deeper than 32 levels"
    nested = json.dumps({**entry(), "extra": json.loads("[" * 40 + "]" * 40)}).encode()
    assert "nested deeper than 32 levels" in refusal(tmp_path, ("results/0000.json", nested))
    args = {**entry(), "args_json": "[" * 5000 + "]" * 5000}
    assert "args_json" in refusal(tmp_path, ("results/0000.json", args))


def test_a_missing_field_is_named(tmp_path):
    missing = entry()
    del missing["size"]
    assert "not a result entry (fields: args_json, demo, format, result)" in \
        refusal(tmp_path, ("results/0000.json", missing))
    del missing["result"]["timings"]
    missing["size"] = "full"
    assert "result: missing timings" in refusal(tmp_path, ("results/0000.json", missing))


def test_a_result_that_appears_twice_names_both_members(tmp_path):
    message = refusal(tmp_path, ("results/0000.json", entry()), ("results/0001.json", entry()))
    assert message == ("hostile.tar:results/0001.json: the result of a.f {} (full) is also in "
                       "hostile.tar:results/0000.json; which one is meant?")


def test_a_member_is_read_with_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 1000)
    big = json.dumps(entry(values={"v": "x" * 2000})).encode()
    assert refusal(tmp_path, ("results/0000.json", big)) == \
        f"hostile.tar:results/0000.json: {len(big)} bytes, over the limit of 1000 for one result"
    read = []
    original = tarfile.ExFileObject.read

    def spy(self, size=-1):
        read.append(size)
        return original(self, size)
    monkeypatch.setattr(tarfile.ExFileObject, "read", spy)
    write_archive(tmp_path / "ok.tar", ("results/0000.json", b'{"format": 2}'))
    with pytest.raises(BuildError):
        read_archive(tmp_path / "ok.tar", "full")
    assert read and all(0 < size <= 1001 for size in read)     # never read() of a whole member


def test_an_archive_of_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBERS", 3)
    members = [(f"other/{i}.txt", b"x") for i in range(4)]
    assert refusal(tmp_path, *members) == "hostile.tar: more than 3 members; not a results archive"


def test_links_devices_and_fifos_in_the_archive_are_never_read(tmp_path):
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as tar:
        for name, kind in (("results/0000.json", tarfile.SYMTYPE), ("results/0001.json", tarfile.LNKTYPE),
                           ("results/0002.json", tarfile.FIFOTYPE), ("results/0003.json", tarfile.CHRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/shadow"
            tar.addfile(info)
    assert read_archive(path, "full") == {}


# --- the builder reads only inside the talk, only regular files ------------------------------------

@pytest.fixture
def talk(tmp_path):
    root = tmp_path / "talk"
    (root / "demos").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("password")
    (root / "demos" / "secret.txt").symlink_to(tmp_path / "secret.txt")
    (root / "demos" / "zero").symlink_to("/dev/zero")
    os.mkfifo(root / "demos" / "fifo")
    return root


@pytest.mark.timeout(30)
def test_a_read_that_leads_out_or_is_no_regular_file_is_stale_and_never_opened(talk, tmp_path, monkeypatch, capsys):
    reads = {"demos/secret.txt": file_hash(str(tmp_path / "secret.txt")), "demos/zero": "0" * 64,
             "demos/fifo": "0" * 64}
    write_archive(tmp_path / "r.tar", ("results/0000.json", entry(reads=reads)))
    opened = []
    monkeypatch.setattr(runner, "file_hash", lambda path: opened.append(path) or runner.NOT_A_FILE)
    no_demo_may_run(monkeypatch)
    settings = RunSettings(root=talk, builder=talk, cache_dir=talk / ".cache", device="cpu",
                           results_archive=tmp_path / "r.tar")
    results = run_demos([DemoCall("a.f")], [], settings)
    assert results[DemoCall("a.f")].provenance.stale
    assert opened == [str(talk / "demos" / "fifo")]                      # only inside the talk
    stderr = capsys.readouterr().err
    assert "demos/secret.txt (leads out of the talk)" in stderr and "demos/zero (leads out of the talk)" in stderr


@pytest.mark.timeout(30)
def test_hashing_a_fifo_or_a_device_returns_at_once_without_reading(talk):
    assert file_hash(str(talk / "demos" / "fifo")) == "not a regular file"
    assert file_hash("/dev/zero") == "not a regular file"
