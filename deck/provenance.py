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


def provenance_slide(pages: jinja2.Environment, rows: list[dict], number: int) -> RenderedSlide:
    measured = footer_text(rows)
    body = pages.get_template("provenance.html.j2").render(rows=rows, summary=measured)
    notes = "Backup: where and when each demo ran." + (f" {measured}." if measured else "")
    return RenderedSlide(number=number, title="Where these numbers come from", timing=PROVENANCE_SLIDE_SECONDS,
                         location="(generated)", html=body, notes_html=f"<p>{notes}</p>", notes_text=notes,
                         id="provenance", classes="provenance backup")
