"""End to end: python build.py on the fixture talk, as a presenter runs it."""
import re
import subprocess
import sys

import pytest

from conftest import REPO, build_here, ran


def slide_count(index_html: str) -> int:
    return len(re.findall(r"<section ", index_html))


def test_a_cold_build_runs_each_demo_once_and_writes_the_deck(fixture_build):
    build, project = fixture_build, fixture_build.root
    assert build.returncode == 0, build.stderr
    assert sorted(ran(build)) == ["arith.line_plot", "arith.scaled", "arith.tensor_sum", "words.shout"]
    assert re.search(r"\[1/4\] \S+ \.\.\. \d+\.\d s", build.stderr)           # progress with seconds
    index = (project / "dist" / "index.html").read_text()
    assert slide_count(index) == 6 + 1                                        # + where-numbers-come-from
    assert "The sum is 45 on cpu." in index
    assert 'data-timing="30"' in index and '<aside class="notes">' in index
    assert "HELLO FROM CPU" in index
    for asset in ("reveal.js", "notes.js", "reveal.css", "theme.css", "deck.css"):
        assert (project / "dist" / "assets" / asset).stat().st_size > 1000
    notes = (project / "dist" / "notes.html").read_text()
    assert "Say hello." in notes and "data:image/svg+xml" in notes                         # key figure beside its notes
    assert not [p for p in project.iterdir() if p.name.startswith(".dist")]   # no staging folders left


@pytest.mark.slow
def test_rebuilds_rerun_only_what_changed(built_project):
    project = built_project
    assert ran(build_here(project)) == []                                      # nothing changed
    slide = project / "slides" / "10-intro.md"
    slide.write_text(slide.read_text().replace("A talk about", "A short talk about"))
    prose = build_here(project)
    assert ran(prose) == [] and "A short talk about" in (project / "dist" / "index.html").read_text()
    module = project / "demos" / "words.py"
    module.write_text(module.read_text().replace('"hello"', '"howdy"'))
    edited = build_here(project)
    assert ran(edited) == ["words.shout"]
    assert "the word is HOWDY" in (project / "dist" / "index.html").read_text()
    assert ran(build_here(project, "--rerun", "arith.scaled")) == ["arith.scaled"]
    typo = build_here(project, "--rerun", "arith.scald")
    assert typo.returncode == 1 and "--rerun arith.scald: no such demo (did you mean: arith.scaled," in typo.stderr
    assert len(ran(build_here(project, "--fresh"))) == 4


@pytest.mark.slow
def test_a_corrupt_cache_entry_is_rerun_not_fatal(built_project):
    project = built_project
    for entry in (project / ".cache" / "deck" / "results").glob("*.json"):
        entry.write_text(entry.read_text()[:50])
    again = build_here(project)
    assert again.returncode == 0 and len(ran(again)) == 4
    assert "discarding cache entry" in again.stderr


def test_an_unknown_demo_stops_the_build_and_keeps_the_last_deck(built_project):
    project = built_project
    before = (project / "dist" / "index.html").read_bytes()
    slide = project / "slides" / "20-more.md"
    slide.write_text(slide.read_text().replace('demo("arith.tensor_sum")', 'demo("arith.tensor_summ")'))
    broken = build_here(project)
    assert broken.returncode == 1
    assert "slides/20-more.md:4: no demo function 'arith.tensor_summ' in demos/ (did you mean: arith.tensor_sum" \
        in broken.stderr
    assert (project / "dist" / "index.html").read_bytes() == before


@pytest.mark.slow
def test_a_demo_that_raises_reports_the_slide_and_its_traceback(built_project):
    project = built_project
    module = project / "demos" / "words.py"
    module.write_text(module.read_text().replace('    print("HELLO', '    {}["missing"]\n    print("HELLO'))
    broken = build_here(project)
    assert broken.returncode == 1
    assert "slides/20-more.md:23: demo words.shout raised an exception:" in broken.stderr
    assert 'demos/words.py", line 6, in shout' in broken.stderr and "KeyError: 'missing'" in broken.stderr
    kept = build_here(project, "--keep-going")
    assert kept.returncode == 0
    index = (project / "dist" / "index.html").read_text()
    assert 'class="error-card"' in index and "KeyError" in index and "The sum is 45" in index


def test_single_file_inlines_every_asset(built_project, tmp_path):
    project = built_project
    build = build_here(project, "--single-file", "--out", str(tmp_path / "single"))
    assert build.returncode == 0, build.stderr
    assert sorted(p.name for p in (tmp_path / "single").iterdir()) == [".deck-output", "index.html", "notes.html"]
    index = (tmp_path / "single" / "index.html").read_text()
    markup = re.sub(r"<script>.*?</script>", "", index, flags=re.S)          # the HTML, not inlined JS
    assert not re.search(r'<(script|link|img)\b[^>]*\b(src|href)="(?!data:)', markup)  # nothing linked
    assert "Reveal.initialize" in index and "RevealNotes" in index


def test_notes_prints_every_slide_with_budget_and_total(built_project):
    project = built_project
    notes = build_here(project, "notes")
    assert notes.returncode == 0, notes.stderr
    lines = notes.stdout.splitlines()
    assert lines[0].startswith("  1. Fixture talk  [0:20, at 0:00]  slides/10-intro.md:1")
    assert "      Say hello." in lines
    assert any(line.startswith("  6. Words  [0:10, at 2:10]") for line in lines)
    assert lines[-1].startswith("total: 2:30 for 7 slides (target 45:00")


@pytest.mark.slow
def test_the_builder_never_imports_torch(built_project):
    project = built_project
    code = ("import sys; sys.path.insert(0, %r); import build; "
            "code = build.main(['--root', %r]); print(code, 'torch' in sys.modules, 'matplotlib' in sys.modules)")
    check = subprocess.run([sys.executable, "-c", code % (str(REPO), str(project))],
                           capture_output=True, text=True, timeout=300)
    assert check.stdout.split() == ["0", "False", "False"], check.stderr


def test_each_option_belongs_to_its_command(built_project):
    """--times is notes' and --port is serve's: given to another command they are an error, not ignored."""
    for misplaced in (["--times"], ["notes", "--port", "9000"], ["serve", "--times"]):
        wrong = build_here(built_project, *misplaced)
        assert wrong.returncode == 2 and "unrecognized arguments" in wrong.stderr, misplaced


@pytest.mark.slow
def test_options_may_come_before_the_command(built_project):
    assert build_here(built_project, "--size", "small", "notes", "--times").returncode == 0
