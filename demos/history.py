"""Part #1 of the talk: "Deep learning frameworks: a game of thrones".

Nothing here is typed from memory.  Two cited tables sit beside this file:
``history.csv`` (one row per release, milestone or deprecation, each with its
source URL) and ``history_share.csv`` (Horace He's counts of conference
papers that name PyTorch or TensorFlow).  The demos draw them and hand the
slides the years they quote, so "TensorFlow arrived in ..." comes from the
table, not from whoever wrote the slide.  The last demo asks this machine's
torch what it thinks of TorchScript today.
"""
from __future__ import annotations

import csv
import re
import textwrap
import warnings
from collections import defaultdict
from datetime import date
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MultipleLocator, PercentFormatter
from matplotlib.transforms import Bbox

from deck.result import Figure, Result, Table
from demos._figures import FONT, NEUTRAL, PALETTE, PYTORCH, WIDTH, slide_figure

EVENTS_CSV = Path(__file__).with_name("history.csv")
SHARE_CSV = Path(__file__).with_name("history_share.csv")

MARKERS = {"release": "o", "milestone": "D", "deprecation": "X"}
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
FIG_SIZE = (WIDTH, 5.9)           # inches: the slide's width, and the height left under a heading
AXES = (0.17, 0.09, 0.81, 0.80)   # left, bottom, width, height of the figure


# --- reading the cited tables ----------------------------------------------

def read_rows(path: Path) -> list[dict]:
    """A cited table's rows, oldest first (ISO dates sort as text)."""
    with open(path, newline="", encoding="utf-8") as file:
        return sorted(csv.DictReader(file), key=lambda row: row["date"])


def decimal_year(iso: str) -> float:
    """'2017-01' or '2017-01-19' as a point in time (mid-month if no day)."""
    year, month, day = (int(p) for p in (iso.split("-") + ["15"])[:3])
    return year + (date(year, month, day).timetuple().tm_yday - 0.5) / 366


def months_between(earlier: str, later: str) -> int:
    """Whole calendar months from one ISO date to another."""
    (y0, m0), (y1, m1) = ((int(p) for p in d.split("-")[:2])
                          for d in (earlier, later))
    return (y1 - y0) * 12 + (m1 - m0)


def readable(iso: str) -> str:
    """'2015-11-09' -> '9 Nov 2015', '2017-09' -> 'Sep 2017', for prose."""
    parts = [int(p) for p in iso.split("-")]
    month = MONTHS[parts[1] - 1]
    day = f"{parts[2]} " if len(parts) == 3 else ""
    return f"{day}{month} {parts[0]}"


def slug(name: str) -> str:
    """'PyTorch 2.0' -> 'pytorch_2_0', a value name Jinja can use."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def label(event: dict) -> str:
    """What the timeline writes at an event: its name, † for a death."""
    dead = event["kind"] == "deprecation"
    return event["framework"] + (" †" if dead else "")


# --- the timeline ----------------------------------------------------------

def houses_in_order(events: list[dict]) -> list[str]:
    """One lane per house, the oldest house on top."""
    return list(dict.fromkeys(event["house"] for event in events))


def crowding(box: Bbox, others: list[Bbox], frame: Bbox) -> float:
    """How much a label's box covers others, or sticks out of the axes."""
    covered = (Bbox.intersection(box, other) for other in others)
    outside = max(0.0, frame.x0 - box.x0) + max(0.0, box.x1 - frame.x1)
    return 100 * outside + sum(b.width * b.height for b in covered if b)


def place_labels(ax, labels: list, markers: list[Bbox]) -> None:
    """Put each label above or below its marker, centred or to one side,
    wherever it is least crowded: latest first, where the years are busy."""
    renderer = ax.figure.canvas.get_renderer()
    frame, placed = ax.get_window_extent(renderer), []
    spots = [(dy, align) for align in ("center", "right", "left")
             for dy in (0.3, -0.3)]
    latest_first = sorted(range(len(labels)),
                          key=lambda i: -labels[i].get_position()[0])
    for i in latest_first:
        text, lane = labels[i], labels[i].get_position()[1]
        others = placed + markers[:i] + markers[i + 1:]

        def box_at(spot):
            text.set_y(lane + spot[0])
            text.set_horizontalalignment(spot[1])
            return text.get_window_extent(renderer).padded(4)
        best = min(spots, key=lambda s: crowding(box_at(s), others, frame))
        placed.append(box_at(best))


def marker_box(ax, x: float, y: float, points: float = 11) -> Bbox:
    """A marker's footprint in display units, so labels keep off it."""
    cx, cy = ax.transData.transform((x, y))
    r = points / 2 * ax.figure.dpi / 72
    return Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)


def style_timeline(ax, houses: list[str]) -> None:
    """House names on the left, years below, nothing else."""
    ax.set_yticks(range(len(houses)),
                  [textwrap.fill(h, 16) for h in reversed(houses)],
                  fontsize=FONT, linespacing=0.95)
    ax.xaxis.set_major_locator(MultipleLocator(2))
    ax.tick_params(axis="x", labelsize=FONT)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [ax.plot([], [], MARKERS[kind], ms=11, color=NEUTRAL, ls="")[0]
               for kind in MARKERS]
    ax.figure.legend(handles, ["release", "milestone", "deprecation (†)"],
                     loc="upper center", bbox_to_anchor=(0.6, 1.0), ncols=3,
                     fontsize=FONT, frameon=False)


def draw_timeline(events: list[dict]) -> MplFigure:
    """Lanes of houses; each framework a marker at its date, deaths as †."""
    fig = MplFigure(figsize=FIG_SIZE)
    FigureCanvasAgg(fig)                 # measures text, so labels can dodge
    ax = fig.add_axes(AXES)
    houses = houses_in_order(events)
    lane_of = {h: len(houses) - 1 - i for i, h in enumerate(houses)}
    color_of = {h: PALETTE[i % len(PALETTE)] for i, h in enumerate(houses)}
    xs = [decimal_year(event["date"]) for event in events]
    ax.set(xlim=(int(min(xs)) - 0.6, int(max(xs)) + 2.5),
           ylim=(-0.6, len(houses) - 0.4))
    for house in houses:
        at = [x for x, e in zip(xs, events) if e["house"] == house]
        ax.plot([min(at), max(at)], [lane_of[house]] * 2, lw=3, alpha=0.35,
                color=color_of[house], solid_capstyle="round")
    labels, markers = [], []
    for x, event in zip(xs, events):
        lane, dead = lane_of[event["house"]], event["kind"] == "deprecation"
        pytorch = event["framework"].startswith("PyTorch")   # the protagonist
        ax.plot(x, lane, MARKERS[event["kind"]], ms=15 if pytorch else 11, markeredgecolor="white",
                color=NEUTRAL if dead else PYTORCH if pytorch else color_of[event["house"]], zorder=3)
        labels.append(ax.text(x, lane, label(event), va="center",
                              fontsize=FONT, color=NEUTRAL if dead else PYTORCH if pytorch else "black",
                              style="italic" if dead else "normal", weight="bold" if pytorch else "normal"))
        markers.append(marker_box(ax, x, lane))
    place_labels(ax, labels, markers)
    style_timeline(ax, houses)
    return fig


def timeline_alt(events: list[dict]) -> str:
    """Screen-reader text: every event in date order."""
    parts = [f"{label(e).replace(' †', ' (deprecated)')} {e['date'][:4]}"
             f" ({e['house']})" for e in events]
    return ("Timeline of deep learning frameworks, one lane per backer, "
            "oldest first: " + "; ".join(parts) + ".")


def timeline_values(events: list[dict]) -> dict:
    """Dates for the prose: year_<framework>, date_<framework> (ISO) and
    when_<framework> ('9 Nov 2015') from a framework's first row, and
    year_<framework>_<kind> (etc.) from a later row of the same framework."""
    releases = {e["framework"] for e in events if e["kind"] == "release"}
    values = {"first_year": int(events[0]["date"][:4]),
              "last_year": int(events[-1]["date"][:4]),
              "n_frameworks": len(releases), "n_events": len(events)}
    for event in events:
        key = slug(event["framework"])
        if f"year_{key}" in values:
            key = f"{key}_{event['kind']}"
        values[f"year_{key}"] = int(event["date"][:4])
        values[f"date_{key}"] = event["date"]
        values[f"when_{key}"] = readable(event["date"])
    values["tensorflow_head_start_months"] = months_between(
        values["date_tensorflow"], values["date_pytorch"])
    return values


def timeline(device: str, size: str = "full") -> Result:
    """The game of thrones: who backed which framework, when, who fell."""
    events = read_rows(EVENTS_CSV)     # device and size do not matter here
    values = timeline_values(events)
    print(f"{values['n_events']} cited events, {values['n_frameworks']} "
          f"frameworks, {values['first_year']}-{values['last_year']}")
    table = Table(["framework", "event", "date", "house"],
                  [[e["framework"], e["event"], e["date"], e["house"]]
                   for e in events],
                  caption="Cited events; sources on the references slide")
    figure = Figure(draw_timeline(events), timeline_alt(events))
    return Result(values=values, tables=[table], figures=[figure])


# --- the share of conference papers ----------------------------------------

def papers_per_year(rows: list[dict]) -> dict[int, tuple[int, int]]:
    """Per year: (papers naming only PyTorch, papers naming only TensorFlow)."""
    counts = defaultdict(lambda: [0, 0])
    for row in rows:
        year = counts[int(row["date"][:4])]
        year[0] += int(row["pytorch_papers"])
        year[1] += int(row["tensorflow_papers"])
    return {y: tuple(c) for y, c in sorted(counts.items()) if sum(c) > 0}


def pytorch_share(counts: dict[int, tuple[int, int]]) -> list[float]:
    """Of the papers naming one of the two, the fraction naming PyTorch."""
    return [pt / (pt + tf) for pt, tf in counts.values()]


def draw_share(rows: list[dict]) -> MplFigure:
    """PyTorch's share per field of research, and over all conferences."""
    fig = slide_figure(WIDTH, 4.5)
    ax = fig.subplots()
    for i, field in enumerate(sorted({row["field"] for row in rows})):
        counts = papers_per_year([r for r in rows if r["field"] == field])
        ax.plot(list(counts), pytorch_share(counts), "o-", color=PALETTE[i % len(PALETTE)],
                lw=2, label=f"{field} conferences")
    counts = papers_per_year(rows)
    ax.plot(list(counts), pytorch_share(counts), "s-", color=PYTORCH, lw=5,
            ms=10, label="all conferences")
    ax.axhline(0.5, color=NEUTRAL, ls="--", lw=1)
    ax.set(ylim=(0, 1), xticks=list(counts))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("PyTorch share of papers\nnaming PyTorch or TensorFlow",
                  fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT, loc="upper left", frameon=False)
    return fig


def share_values(rows: list[dict]) -> dict:
    """First and last year, their shares, the first PyTorch-majority year."""
    counts = papers_per_year(rows)
    years, shares = list(counts), pytorch_share(counts)
    majority = [y for y, s in zip(years, shares) if s > 0.5]
    last = {r["conference"] for r in rows if r["date"][:4] == str(years[-1])}
    values = {"first_year": years[0], "last_year": years[-1],
              "share_first_year": shares[0], "share_last_year": shares[-1],
              "first_majority_year": majority[0] if majority else 0,
              "conferences_last_year": ", ".join(sorted(last)),
              "years": years, "shares": shares}
    values.update({f"share_{y}": s for y, s in zip(years, shares)})
    return values


def paper_share(device: str, size: str = "full") -> Result:
    """Of conference papers naming one of the two, the share naming PyTorch."""
    rows = read_rows(SHARE_CSV)        # device and size do not matter here
    values = share_values(rows)
    counts = papers_per_year(rows)
    print(f"PyTorch share: {values['share_first_year']:.0%} in "
          f"{values['first_year']} -> {values['share_last_year']:.0%} in "
          f"{values['last_year']}")
    table = Table(["year", "PyTorch papers", "TensorFlow papers", "share"],
                  [[y, pt, tf, f"{pt / (pt + tf):.0%}"]
                   for y, (pt, tf) in counts.items()],
                  caption="Papers naming only one of the two (H. He's data)")
    alt = ("Line chart of PyTorch's share of conference papers that name "
           "PyTorch or TensorFlow: "
           + ", ".join(f"{y} {s:.0%}" for y, s in zip(values["years"],
                                                      values["shares"]))
           + ". Thinner lines split vision, NLP and ML conferences; a dashed "
           "line marks one half.")
    return Result(values=values, tables=[table],
                  figures=[Figure(draw_share(rows), alt)])


# --- the deprecation, live ------------------------------------------------

def script_double():
    """Compile a tiny function with TorchScript, the PyTorch 1.x way."""
    import torch

    def double(x: torch.Tensor) -> torch.Tensor:
        return 2 * x
    return torch.jit.script(double)


def torchscript_warning(device: str, size: str = "full") -> Result:
    """What this machine's torch says when asked for TorchScript."""
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scripted = script_double()
    said = [str(w.message) for w in caught
            if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    x = torch.arange(3.0, device=torch.device(device))
    works = bool(torch.equal(scripted(x), 2 * x))   # deprecated, not removed
    print(said[0] if said else "no deprecation warning")
    return Result(values={"warned": bool(said),
                          "message": said[0] if said else "",
                          "still_works": works, "torch": torch.__version__})


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
