"""Results archives: run the talk on one machine (a GPU box), build the deck on another.

``--export-results FILE.tar`` writes one JSON member per result; ``--results
FILE.tar`` reads them back.  An archive is untrusted input, passed between
machines and people: only JSON members are read (nothing is extracted), and every
field is checked by ``deck.result.from_json``; a bad one is refused with the member
and field named.
"""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from pathlib import Path

from deck.errors import BuildError
from deck.result import FORMAT, DemoCall, Result, ResultFormatError, from_json, to_json

DEMO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
ENTRY_FIELDS = {"format", "demo", "args_json", "size", "result"}
LEGACY_FIELDS = {"demo", "args_json", "size", "source_digest", "result"}   # archives written before FORMAT 2


def export_archive(results: dict[DemoCall, Result], size: str, path: Path) -> int:
    """Write the build's results (not failures) to a tar file; returns how many."""
    entries = [{"format": FORMAT, "demo": call.demo, "args_json": call.args_json, "size": size,
                "result": to_json(result)} for call, result in results.items() if not result.failed]
    path = path.resolve()
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(temporary, "w") as archive:
            for number, entry in enumerate(entries):
                data = json.dumps(entry).encode()
                member = tarfile.TarInfo(f"results/{number:04d}.json")
                member.size, member.mtime = len(data), int(time.time())
                archive.addfile(member, io.BytesIO(data))
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BuildError(f"cannot write results to {path}: {error.strerror or error}") from None
    return len(entries)


def read_archive(path: Path, size: str) -> dict[tuple[str, str], Result]:
    """Results of this size by (demo, arguments)."""
    found = {}
    try:
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if not (member.isfile() and member.name.startswith("results/") and member.name.endswith(".json")):
                    continue
                where = f"{path.name}:{member.name}"
                try:
                    entry = json.loads(archive.extractfile(member).read())
                    demo, args_json, entry_size, result = read_entry(entry)
                except (ResultFormatError, ValueError) as error:
                    raise BuildError(f"{where}: {error}") from None
                if entry_size == size:
                    found[demo, args_json] = result
    except (OSError, tarfile.TarError) as error:
        raise BuildError(f"cannot read results from {path}: {error}") from None
    return found


def read_entry(entry) -> tuple[str, str, str, Result]:
    if not isinstance(entry, dict) or set(entry) not in (ENTRY_FIELDS, LEGACY_FIELDS):
        raise ResultFormatError(f"not a result entry (fields: {', '.join(sorted(entry)) if isinstance(entry, dict) else type(entry).__name__})")
    demo, args_json, size = entry["demo"], entry["args_json"], entry["size"]
    if not isinstance(demo, str) or not DEMO_NAME.match(demo):
        raise ResultFormatError(f"demo: not a demo name: {demo!r:.60}")
    if not isinstance(args_json, str) or not isinstance(parse_json(args_json, "args_json"), dict):
        raise ResultFormatError("args_json: expected a JSON object in a string")
    if size not in ("full", "small"):
        raise ResultFormatError(f"size: expected 'full' or 'small', got {size!r:.60}")
    if "format" in entry:
        if entry["format"] != FORMAT:
            raise ResultFormatError(f"format: {entry['format']!r:.20} (this builder reads format {FORMAT})")
        return demo, args_json, size, from_json(entry["result"], "result")
    return demo, args_json, size, from_json(legacy_result(entry["result"]), "result")


def parse_json(text: str, field: str):
    try:
        return json.loads(text)
    except ValueError:
        raise ResultFormatError(f"{field}: not JSON") from None


def legacy_result(old) -> dict:
    """A result from an archive of the first format in today's shape; it recorded no reads, so it is stale."""
    if not isinstance(old, dict):
        raise ResultFormatError(f"result: expected an object, got {type(old).__name__}")
    provenance = old.get("provenance")
    if isinstance(provenance, dict):
        provenance = {key: provenance.get(key) for key in ("device", "device_name", "torch", "python")}
        provenance.update(ran_at=old.get("ran_at"), seconds=old.get("seconds"), stale=True)
    figures = old.get("figures")
    if isinstance(figures, list):
        figures = [{key: figure.get(key) for key in ("alt", "svg")} if isinstance(figure, dict) else figure
                   for figure in figures]
    return {"values": old.get("values"), "measured": {}, "tables": old.get("tables"), "figures": figures,
            "timings": old.get("timings"), "output": {"text": old.get("output"), "total_bytes": old.get("output_bytes")},
            "provenance": provenance, "reads": {}, "error": ""}
