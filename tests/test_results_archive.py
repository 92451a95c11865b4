"""Results travel: run the demos on one machine, build the deck on another without rerunning them."""
import base64
import io
import json
import re
import shutil
import tarfile

import pytest

from conftest import build_here, ran


def provenance_rows(index: str) -> list[str]:
    return re.findall(r"<tr><td>(\w+\.\w+)[^<]*(?:<strong>[^<]*</strong>)?</td><td>([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td>", index)


@pytest.mark.slow
def test_results_exported_on_one_machine_build_the_deck_on_another(built_project, tmp_path):
    project = built_project
    archive = tmp_path / "results.tar"
    gpu_box = build_here(project, "--export-results", str(archive))
    assert gpu_box.returncode == 0 and "exported 4 results" in gpu_box.stderr
    original = (project / "dist" / "index.html").read_text()

    laptop = tmp_path / "laptop"
    shutil.copytree(project, laptop, ignore=shutil.ignore_patterns(".cache", "dist"))
    built = build_here(laptop, "--results", str(archive))
    assert built.returncode == 0, built.stderr
    assert ran(built) == [] and "demos: 4 from results.tar" in built.stderr
    index = (laptop / "dist" / "index.html").read_text()
    assert "The sum is 45 on cpu." in index
    assert provenance_rows(index) == provenance_rows(original) and len(provenance_rows(index)) == 4

    module = laptop / "demos" / "words.py"
    module.write_text(module.read_text().replace('"hello"', '"howdy"'))
    stale = build_here(laptop, "--results", str(archive))
    assert stale.returncode == 0 and ran(stale) == []                         # reported, not rerun
    assert re.search(r"stale: words.shout ran on cpu .* and since then demos/words.py changed", stale.stderr)
    assert "words.shout <strong>(stale)</strong>" in (laptop / "dist" / "index.html").read_text()
    asked = build_here(laptop, "--results", str(archive), "--rerun", "words.shout")
    assert ran(asked) == ["words.shout"] and "the word is HOWDY" in (laptop / "dist" / "index.html").read_text()


def test_a_broken_archive_is_a_clear_error(built_project, tmp_path):
    project = built_project
    archive = tmp_path / "results.tar"
    archive.write_bytes(b"not a tar file")
    broken = build_here(project, "--results", str(archive))
    assert broken.returncode == 1 and f"cannot read results from {archive}" in broken.stderr


def rewrite_archive(source, target, change) -> None:
    """A copy of an archive with change(entry) applied to each member's JSON."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for member in old.getmembers():
            entry = json.loads(old.extractfile(member).read())
            change(entry)
            data = json.dumps(entry).encode()
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("change, message", [
    (lambda e: e["result"]["provenance"].update(ran_at=5), "result.provenance.ran_at: expected a str, got 5"),
    (lambda e: e["result"]["values"].update(total={"a": 1}), "result.values.total: expected a number, string"),
    (lambda e: e["result"]["tables"].append({"columns": "x"}), "result.tables[0]: missing caption, rows"),
    (lambda e: e.update(demo="../../etc.passwd"), "demo: not a demo name"),
    (lambda e: e.update(args_json="[1]"), "args_json: expected a JSON object in a string"),
    (lambda e: e["result"].update(extra=1), "result: unknown extra"),
])
def test_a_tampered_archive_is_refused_naming_the_member_and_field(built_project, tmp_path, change, message):
    project = built_project
    archive, tampered = tmp_path / "results.tar", tmp_path / "tampered.tar"
    assert build_here(project, "--export-results", str(archive)).returncode == 0
    rewrite_archive(archive, tampered, change)
    build = build_here(project, "--results", str(tampered))
    assert build.returncode == 1 and "Traceback" not in build.stderr
    assert re.search(rf"error: tampered.tar:results/\d{{4}}.json: {re.escape(message)}", build.stderr), build.stderr


def test_a_figure_from_an_archive_cannot_run_script(built_project, tmp_path):
    project = built_project
    archive, tampered = tmp_path / "results.tar", tmp_path / "tampered.tar"
    assert build_here(project, "--export-results", str(archive)).returncode == 0
    evil = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'

    def poison(entry):
        for figure in entry["result"]["figures"]:
            figure.update(svg=evil, alt='"><script>alert(3)</script>')
    rewrite_archive(archive, tampered, poison)
    assert build_here(project, "--results", str(tampered)).returncode == 0
    for page in ("index.html", "notes.html"):
        html = (project / "dist" / page).read_text()
        assert evil not in html and "<script>alert" not in html and 'onload="' not in html
        assert f'src="data:image/svg+xml;base64,{base64.b64encode(evil.encode()).decode()}"' in html


def test_an_archive_of_the_first_format_is_read_and_reported_stale(built_project, tmp_path):
    project = built_project
    archive, legacy = tmp_path / "results.tar", tmp_path / "legacy.tar"
    assert build_here(project, "--export-results", str(archive)).returncode == 0

    def to_first_format(entry):
        new = entry.pop("result")
        del entry["format"]
        where = new["provenance"]
        entry.update(source_digest="0" * 64, result={
            "values": new["values"], "tables": new["tables"], "figures": new["figures"], "timings": new["timings"],
            "output": new["output"]["text"], "output_bytes": new["output"]["total_bytes"], "truncated": False,
            "seconds": where["seconds"], "ran_at": where["ran_at"],
            "provenance": {k: where[k] for k in ("device", "device_name", "torch", "python", "seconds", "ran_at")}})
    rewrite_archive(archive, legacy, to_first_format)
    build = build_here(project, "--results", str(legacy))
    assert build.returncode == 0 and ran(build) == [] and "stale: arith.tensor_sum" in build.stderr
    assert "The sum is 45 on cpu." in (project / "dist" / "index.html").read_text()
