"""Part #1, the history: its cited facts, its demos, and the slides that quote them.

The expected values are computed here from the CSV files with plain loops, not
copied from the demo, so a wrong row or a wrong computation shows up.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date
from pathlib import Path

import matplotlib
import pytest

from demos import history
from deck.result import Result

pytestmark = pytest.mark.usefixtures("demo_tmpdir")  # what its libraries write to TMPDIR stays the test's

ROOT = Path(__file__).resolve().parents[1]
EVENTS_CSV = ROOT / "demos" / "history.csv"
SHARE_CSV = ROOT / "demos" / "history_share.csv"
SLIDES = ROOT / "slides"
MY_SLIDES = ["00-title.md", "05-welcome.md", "10-grabber.md", "15-agenda.md",
             "20-objectives.md", "25-ethos.md", "30-practical.md",
             "40-history.md", "90-questions.md", "92-summary.md",
             "94-objectives.md", "96-final.md", "98-references.md"]

RELEASES = {"Theano", "Torch7", "Caffe", "Chainer", "TensorFlow", "Keras",
            "MXNet", "CNTK", "PyTorch", "JAX"}
# ONNX is a file format, not a framework: a milestone, never counted as one.
MILESTONES = {"ONNX", "TensorFlow 2.0", "PyTorch Foundation", "PyTorch 2.0"}
SECONDARY_HOSTS = ("wikipedia.org", "aiwiki", "techcrunch.com")
DEPRECATIONS = {"TorchScript"}


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def parse(iso: str) -> date:
    """YYYY-MM-DD or YYYY-MM, and a real calendar date."""
    assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", iso), iso
    parts = [int(p) for p in iso.split("-")]
    return date(parts[0], parts[1], parts[2] if len(parts) == 3 else 1)


@pytest.fixture(scope="module")
def timeline() -> Result:
    return history.timeline("cpu", "small")


@pytest.fixture(scope="module")
def share() -> Result:
    return history.paper_share("cpu", "small")


# --- the cited tables --------------------------------------------------------

def test_every_event_is_dated_kinded_and_cited():
    events = rows(EVENTS_CSV)
    assert list(events[0]) == ["framework", "event", "date", "house", "kind",
                               "source_url", "source_kind", "note"]
    for event in events:
        assert date(2000, 1, 1) <= parse(event["date"]) <= date.today()
        assert event["kind"] in {"release", "milestone", "deprecation"}
        assert re.fullmatch(r"https?://\S+", event["source_url"]), event
        assert event["framework"] and event["event"] and event["house"]


def test_every_event_says_whether_its_source_is_primary():
    """An encyclopedia or a news story is a secondary source, and the row says so."""
    for event in rows(EVENTS_CSV):
        assert event["source_kind"] in {"primary", "secondary"}, event
        if any(host in event["source_url"] for host in SECONDARY_HOSTS):
            assert event["source_kind"] == "secondary", event["source_url"]
    primary = {e["framework"] for e in rows(EVENTS_CSV)
               if e["source_kind"] == "primary"}
    assert {"CNTK", "MXNet", "ONNX", "JAX", "PyTorch", "PyTorch 2.0"} <= primary


def test_the_corrected_dates():
    """CNTK's GitHub release, MXNet's v0.5, ONNX's announcement day."""
    first = {}
    for event in sorted(rows(EVENTS_CSV), key=lambda e: e["date"]):
        first.setdefault(event["framework"], event)
    assert first["CNTK"]["date"] == "2016-01"
    assert first["MXNet"]["date"] == "2015-09" and "Amazon" not in first["MXNet"]["house"].split("(")[0]
    assert first["ONNX"]["date"] == "2017-09-07"
    assert first["JAX"]["date"].startswith("2018-1")


def test_every_required_framework_and_turn_is_there():
    events = rows(EVENTS_CSV)
    kinds = {(e["framework"], e["kind"]) for e in events}
    assert {(f, "release") for f in RELEASES} <= kinds
    assert {(f, "milestone") for f in MILESTONES} <= kinds
    assert {(f, "deprecation") for f in DEPRECATIONS} <= kinds


def test_share_rows_are_dated_counted_and_cited():
    for row in rows(SHARE_CSV):
        parse(row["date"])
        pt, tf, total = (int(row[k]) for k in ("pytorch_papers",
                                               "tensorflow_papers",
                                               "total_papers"))
        assert 0 <= pt + tf <= total
        assert re.fullmatch(r"https?://\S+", row["source_url"])
        assert row["field"] in {"vision", "NLP", "ML"}


# --- the timeline demo -----------------------------------------------------------

def test_timeline_alt_text_names_every_framework_in_order(timeline):
    alt = timeline.figures[0].alt
    events = sorted(rows(EVENTS_CSV), key=lambda e: e["date"])
    positions = [alt.index(e["framework"]) for e in events
                 if e["kind"] == "release"]
    assert positions == sorted(positions)
    for name in RELEASES | MILESTONES | DEPRECATIONS:
        assert name in alt


def test_timeline_svg_contains_the_names(timeline):
    svg = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        timeline.figures[0].figure.savefig(svg, format="svg")
    text = svg.getvalue()
    assert "<text" in text
    for name in RELEASES | MILESTONES:
        assert name in text, name


def test_timeline_values_match_the_csv(timeline):
    events = sorted(rows(EVENTS_CSV), key=lambda e: e["date"])
    years = [int(e["date"][:4]) for e in events]
    values = timeline.values
    assert values["first_year"] == min(years)
    assert values["last_year"] == max(years)
    assert values["n_events"] == len(events)
    assert values["n_frameworks"] == len(
        {e["framework"] for e in events if e["kind"] == "release"})
    assert values["n_frameworks"] == len(RELEASES)          # ONNX not among them
    first_row = {}
    for event in events:
        first_row.setdefault(event["framework"], event)
    for name, event in first_row.items():
        key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        assert values[f"year_{key}"] == int(event["date"][:4])
        assert values[f"date_{key}"] == event["date"]
    theano_end = [e for e in events if e["framework"] == "Theano"
                  and e["kind"] == "deprecation"][0]
    assert values["year_theano_deprecation"] == int(theano_end["date"][:4])
    tf, pt = first_row["TensorFlow"]["date"], first_row["PyTorch"]["date"]
    assert values["tensorflow_head_start_months"] == (
        (int(pt[:4]) - int(tf[:4])) * 12 + int(pt[5:7]) - int(tf[5:7]))
    assert values["when_tensorflow"].endswith(tf[:4])
    table = timeline.tables[0]
    assert len(table.rows) == len(events)
    for value in values.values():
        assert isinstance(value, (int, float, str, bool))


# --- the paper-share demo --------------------------------------------------------

def test_paper_share_values_match_the_csv(share):
    per_year = {}
    for row in rows(SHARE_CSV):
        pt, tf = per_year.get(int(row["date"][:4]), (0, 0))
        per_year[int(row["date"][:4])] = (pt + int(row["pytorch_papers"]),
                                          tf + int(row["tensorflow_papers"]))
    years = sorted(y for y, counts in per_year.items() if sum(counts) > 0)
    shares = [per_year[y][0] / sum(per_year[y]) for y in years]
    values = share.values
    assert values["years"] == years
    assert values["shares"] == pytest.approx(shares)
    assert values["first_year"] == years[0] and values["last_year"] == years[-1]
    assert values["share_last_year"] == pytest.approx(shares[-1])
    assert values["first_majority_year"] == next(
        y for y, s in zip(years, shares) if s > 0.5)
    assert str(years[-1]) in share.figures[0].alt


# --- the live deprecation ---------------------------------------------------------

def test_torchscript_still_runs_and_says_whether_it_is_deprecated():
    values = history.torchscript_warning("cpu", "small").values
    assert values["still_works"] is True
    assert values["warned"] == bool(values["message"])


# --- the slides that quote all this -------------------------------------------------

def my_slide_text() -> dict[str, str]:
    return {name: (SLIDES / name).read_text(encoding="utf-8")
            for name in MY_SLIDES if (SLIDES / name).exists()}


def test_every_source_is_on_the_references_slide():
    references = (SLIDES / "98-references.md").read_text(encoding="utf-8")
    for row in rows(EVENTS_CSV) + rows(SHARE_CSV):
        assert f"({row['source_url']})" in references, row["source_url"]


def test_every_url_on_my_slides_is_on_the_references_slide():
    references = (SLIDES / "98-references.md").read_text(encoding="utf-8")
    for name, text in my_slide_text().items():
        for url in re.findall(r"\]\((https?://[^\s)]+(?:\([^)]*\))?[^\s)]*)\)", text):
            assert url in references, f"{name}: {url}"


def test_the_part_five_sources_are_referenced():
    references = (SLIDES / "98-references.md").read_text(encoding="utf-8")
    for page in ("ai.meta.com/blog/pytorch-builds-the-future-of-ai",
                 "docs.pytorch.org/docs/stable/onnx.html",
                 "distributed.fsdp.fully_shard.html"):
        assert page in references


def test_the_paper_share_slide_quotes_no_typed_percentage():
    """Shares on the slide come from the data; the article's own percentages
    (which count differently) never caption the chart."""
    text = (SLIDES / "10-grabber.md").read_text(encoding="utf-8")
    chart = next(slide for slide in re.split(r"^---$", text, flags=re.M)
                 if 'figure("history.paper_share"' in slide)
    prose = re.sub(r"\{\{.*?\}\}", " ", chart, flags=re.S)
    assert not re.search(r"\d+ ?%", prose)


def test_the_closing_marks_the_underdog_claim_as_the_presenters_own():
    text = (SLIDES / "96-final.md").read_text(encoding="utf-8")
    assert "TensorBoard" in text and re.search(r"my own claim", text, re.I)
    assert "Thank you" in text


def test_every_slide_has_a_timing_and_notes():
    for name, text in my_slide_text().items():
        for slide in re.split(r"^---$", text, flags=re.M):
            assert re.search(r"<!-- \.slide:.*timing=\d+", slide), name
            assert re.search(r"^Note:$", slide, flags=re.M), name


def test_no_year_is_typed_into_the_prose():
    """Years come from the cited table through result(...), not from memory (a citation may name
    its own edition, as in "Developer Survey 2022")."""
    for name, text in my_slide_text().items():
        prose = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", text, flags=re.S)
        prose = re.sub(r'<span class="citation">.*?</span>', " ", prose, flags=re.S)
        prose = re.sub(r"https?://[^\s)]+", " ", prose)
        found = re.findall(r"\b(?:19|20)\d\d\b", prose)
        assert not found, f"{name}: typed year(s) {found}"


def test_slides_ask_only_for_values_the_demos_return(timeline, share):
    results = {"timeline": timeline, "paper_share": share,
               "torchscript_warning": history.torchscript_warning("cpu", "small")}
    for name, text in my_slide_text().items():
        for demo, value in re.findall(r'result\("history\.(\w+)"\)\.(\w+)', text):
            assert value in results[demo].values, f"{name}: {demo}.{value}"
        for demo in re.findall(r'(?:figure|table|output)\("history\.(\w+)"', text):
            assert demo in results, f"{name}: {demo}"
        for function in re.findall(r'code\("history\.(\w+)"\)', text):
            assert callable(getattr(history, function, None)), function
