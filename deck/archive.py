"""Results archives: run the talk on one machine (a GPU box), build the deck on another.

``--export-results FILE.tar`` writes one JSON member per result; ``--results
FILE.tar`` reads them back.  An archive is untrusted input, passed between
machines and people: only regular JSON members are read (nothing is extracted), each
with bounded memory; every field is checked and bounded by ``deck.result.from_json``;
a bad one is refused with the member and field named, and so is a result that appears
twice.  The paths a result says its demo read are data: they must be plain paths inside
the talk, and the builder hashes them only inside the talk (``deck.runner.FileHashes``).
"""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
import zlib
from pathlib import Path

from deck.errors import BuildError
from deck.result import FORMAT, DemoCall, Result, ResultFormatError, from_json, to_json

DEMO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
ENTRY_FIELDS = {"format", "demo", "args_json", "size", "result"}
MAX_MEMBERS = 10_000              # members of any kind an archive may hold
MAX_MEMBER_BYTES = 64 << 20       # one result's JSON (figures' SVG included)
MAX_JSON_DEPTH = 32               # objects and lists nested in one member
MAX_ARGS_CHARS = 10_000           # a demo call's arguments, as JSON
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
    found: dict[tuple[str, str, str], tuple[str, Result]] = {}
    try:
        with tarfile.open(path) as archive:
            for count, member in enumerate(archive, start=1):   # one header at a time, never all of them
                if count > MAX_MEMBERS:
                    raise BuildError(f"{path.name}: more than {MAX_MEMBERS} members; not a results archive")
                if member.isfile() and member.name.startswith("results/") and member.name.endswith(".json"):
                    where = f"{path.name}:{member.name}"
                    demo, args_json, entry_size, result = read_member(archive, member, where)
                    if (demo, args_json, entry_size) in found:
                        raise BuildError(f"{where}: the result of {demo} {args_json} ({entry_size}) is also in "
                                         f"{path.name}:{found[demo, args_json, entry_size][0]}; which one is meant?")
                    found[demo, args_json, entry_size] = member.name, result
    except (OSError, tarfile.TarError, EOFError, zlib.error) as error:
        raise BuildError(f"cannot read results from {path}: {error}") from None
    return {(demo, args_json): result for (demo, args_json, entry_size), (_, result) in found.items()
            if entry_size == size}


def read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> tuple[str, str, str, Result]:
    """One member's entry, read with at most MAX_MEMBER_BYTES in memory, every field checked."""
    if member.size > MAX_MEMBER_BYTES:
        raise BuildError(f"{where}: {member.size} bytes, over the limit of {MAX_MEMBER_BYTES} for one result")
    data = archive.extractfile(member).read(MAX_MEMBER_BYTES + 1)
    try:
        if len(data) > MAX_MEMBER_BYTES:
            raise ResultFormatError(f"over the limit of {MAX_MEMBER_BYTES} bytes for one result")
        entry = parse_json(data, "the member")
        if not nested_within(entry, MAX_JSON_DEPTH):
            raise ResultFormatError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        return read_entry(entry)
    except (ResultFormatError, ValueError) as error:
        raise BuildError(f"{where}: {error}") from None


def nested_within(data, limit: int) -> bool:
    """Whether no list or object in ``data`` lies deeper than ``limit`` (looked at without recursion)."""
    pending = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if children and depth > limit:
            return False
        pending.extend((child, depth + 1) for child in children)
    return True


def read_entry(entry) -> tuple[str, str, str, Result]:
    if not isinstance(entry, dict) or set(entry) not in (ENTRY_FIELDS, LEGACY_FIELDS):
        shown = ", ".join(sorted(entry)[:8]) if isinstance(entry, dict) else type(entry).__name__
        raise ResultFormatError(f"not a result entry (fields: {shown:.200})")
    demo, args_json, size = entry["demo"], entry["args_json"], entry["size"]
    if not isinstance(demo, str) or not DEMO_NAME.match(demo):
        raise ResultFormatError(f"demo: not a demo name: {demo!r:.60}")
    if (not isinstance(args_json, str) or len(args_json) > MAX_ARGS_CHARS
            or not isinstance(parse_json(args_json, "args_json"), dict)):
        raise ResultFormatError("args_json: expected a JSON object in a string")
    if size not in ("full", "small"):
        raise ResultFormatError(f"size: expected 'full' or 'small', got {size!r:.60}")
    if "format" in entry and entry["format"] != FORMAT:
        raise ResultFormatError(f"format: {entry['format']!r:.20} (this builder reads format {FORMAT})")
    result = from_json(entry["result"] if "format" in entry else legacy_result(entry["result"]), "result")
    if result.provenance is None:
        raise ResultFormatError("result.provenance: missing (where and when did it run?)")
    if result.failed:
        raise ResultFormatError("result.error: an archive holds results, not failures")
    return demo, args_json, size, result


def parse_json(text: str | bytes, field: str):
    try:
        return json.loads(text)
    except ValueError:
        raise ResultFormatError(f"{field}: not JSON") from None
    except RecursionError:
        raise ResultFormatError(f"{field}: nested deeper than {MAX_JSON_DEPTH} levels") from None


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
