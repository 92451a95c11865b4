"""Where the numbers were measured: a backup slide listing each demo (slides that show a measured
result carry a badge of their own, see deck/slide_functions.py)."""
from __future__ import annotations

import jinja2

from deck.render import RenderedSlide
from deck.result import DemoCall, Result

PROVENANCE_SLIDE_SECONDS = 10


def provenance_rows(results: dict[DemoCall, Result]) -> list[dict]:
    rows = []
    for call, result in results.items():
        where = result.provenance
        if result.failed or where is None:
            rows.append({"demo": call.demo, "device_name": "failed", "torch": "", "ran_at": "", "seconds": 0,
                         "stale": False})
        else:
            rows.append({"demo": call.demo, "device_name": where.device_name, "torch": where.torch,
                         "ran_at": where.ran_at, "seconds": where.seconds, "stale": where.stale})
    return rows


def footer_text(rows: list[dict]) -> str:
    devices = sorted({row["device_name"] for row in rows if row["torch"]})
    versions = sorted({row["torch"] for row in rows if row["torch"]})
    days = sorted({row["ran_at"][:10] for row in rows if row["ran_at"]})
    if not devices:
        return ""
    when = days[0] if len(days) == 1 else f"{days[0]} – {days[-1]}"
    return f"Numbers measured on {' and '.join(devices)} · torch {', '.join(versions)} · {when}"


def measured_groups(rows: list[dict]) -> list[dict]:
    """One entry per (device, torch) the demos ran with, each with a letter that marks its rows."""
    groups: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["device_name"], row["torch"])
        if key not in groups:
            groups[key] = {"letter": chr(ord("A") + len(groups)), "device_name": key[0], "torch": key[1],
                           "days": set(), "count": 0}
        groups[key]["count"] += 1
        groups[key]["days"].add(row["ran_at"][:10])
        row["group"] = groups[key]["letter"]
    for group in groups.values():
        days = sorted(day for day in group["days"] if day)
        group["when"] = days[0] if len(days) == 1 else f"{days[0]} – {days[-1]}" if days else ""
    return list(groups.values())


def provenance_slide(pages: jinja2.Environment, rows: list[dict], number: int) -> RenderedSlide:
    measured = footer_text(rows)
    rows = [dict(row) for row in rows]
    body = pages.get_template("provenance.html.j2").render(rows=rows, groups=measured_groups(rows))
    notes = "Backup: where and when each demo ran." + (f" {measured}." if measured else "")
    return RenderedSlide(number=number, title="Where these numbers come from", timing=PROVENANCE_SLIDE_SECONDS,
                         location="(generated)", html=body, notes_html=f"<p>{notes}</p>", notes_text=notes,
                         id="provenance", classes="provenance backup")
