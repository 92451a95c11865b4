"""Results travel: run the demos on one machine, build the deck on another without rerunning them."""
import re
import shutil

from conftest import run_build


def ran(process) -> list[str]:
    return re.findall(r"\[\d+/\d+\] (\S+) \.\.\.", process.stderr)


def provenance_rows(index: str) -> list[str]:
    return re.findall(r"<tr><td>(\w+\.\w+)[^<]*(?:<strong>[^<]*</strong>)?</td><td>([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td>", index)


def test_results_exported_on_one_machine_build_the_deck_on_another(project, tmp_path):
    archive = tmp_path / "results.tar"
    gpu_box = run_build(project, "--export-results", str(archive))
    assert gpu_box.returncode == 0 and "exported 4 results" in gpu_box.stderr
    original = (project / "dist" / "index.html").read_text()

    laptop = tmp_path / "laptop"
    shutil.copytree(project, laptop, ignore=shutil.ignore_patterns(".cache", "dist"))
    built = run_build(laptop, "--results", str(archive))
    assert built.returncode == 0, built.stderr
    assert ran(built) == [] and "demos: 4 from results.tar" in built.stderr
    index = (laptop / "dist" / "index.html").read_text()
    assert "The sum is 45 on cpu." in index
    assert provenance_rows(index) == provenance_rows(original) and len(provenance_rows(index)) == 4

    module = laptop / "demos" / "words.py"
    module.write_text(module.read_text().replace('"hello"', '"howdy"'))
    stale = run_build(laptop, "--results", str(archive))
    assert stale.returncode == 0 and ran(stale) == []                         # reported, not rerun
    assert "stale: words.shout has changed since it ran on cpu" in stale.stderr
    assert "words.shout <strong>(stale: its code changed since)</strong>" in (laptop / "dist" / "index.html").read_text()
    asked = run_build(laptop, "--results", str(archive), "--rerun", "words.shout")
    assert ran(asked) == ["words.shout"] and "the word is HOWDY" in (laptop / "dist" / "index.html").read_text()


def test_a_broken_archive_is_a_clear_error(project, tmp_path):
    archive = tmp_path / "results.tar"
    archive.write_bytes(b"not a tar file")
    broken = run_build(project, "--results", str(archive))
    assert broken.returncode == 1 and f"cannot read results from {archive}" in broken.stderr
