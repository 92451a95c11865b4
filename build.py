#!/usr/bin/env python3
"""Build the talk: slides/*.md + demos/*.py -> dist/index.html, an offline reveal.js deck.

    python build.py                  build the deck (runs the demos it needs, cached)
    python build.py notes [--times]  print the speaker notes, write dist/notes.html
    python build.py serve            live preview on 127.0.0.1, rebuilt on every change (--watch)
    python build.py pdf              also write dist/deck.pdf and dist/notes.pdf (headless Chromium)
    python build.py --help           every option

The pipeline, top to bottom: load the slides, find the demo references, run
what the cache does not have (in a worker process; this process never imports
torch), render Markdown + Jinja + Pygments, write the deck atomically.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
import tomllib
from pathlib import Path

from markupsafe import Markup

from deck.browser import write_pdfs
from deck.catalog import load_catalog
from deck.errors import BuildError, closest
from deck.output import content_security_policy, link_tags, output_lock, third_party_assets, write_atomically
from deck.references import scan
from deck.render import RenderedDeck, SlideRenderer, format_minutes, make_environment, pygments_css, render_slides
from deck.runner import RunSettings, export_archive, run_demos
from deck.serve import serve
from deck.slides import load_slides

BUILDER = Path(__file__).resolve().parent
DEFAULT_TALK = {"title": "Untitled talk", "subtitle": "", "presenter": "", "date": "", "target_minutes": 45}


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    if options.command == "serve":
        watched = [options.root / "slides", options.root / "demos", options.templates]
        return serve(lambda: locked_build(options), options.out, watched, options.port)
    started = time.perf_counter()
    try:
        deck = locked_build(options)
        if options.command == "pdf":
            for path in write_pdfs(options.out):
                print(f"wrote {path}", file=sys.stderr)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the previous deck is untouched", file=sys.stderr)
        return 130
    if options.command == "notes":
        (print_times if options.times else print_notes)(deck, options.talk)
    print(f"wrote {options.out}/index.html ({len(deck.slides)} slides, "
          f"{format_minutes(deck.total_seconds)} budgeted) in {time.perf_counter() - started:.2f} s",
          file=sys.stderr)
    return 0


def stop_like_ctrl_c(signal_number, frame):
    """SIGTERM ends a build the way Ctrl-C does: the worker is stopped, the last deck kept."""
    raise KeyboardInterrupt


def locked_build(options: argparse.Namespace) -> RenderedDeck:
    with output_lock(options.out, options.root / ".cache" / "deck"):
        return build(options)


def build(options: argparse.Namespace) -> RenderedDeck:
    slides = load_slides(options.root / "slides", options.root)
    catalog = load_catalog(options.root / "demos", options.root)
    environment = make_environment(options.templates)
    found = scan(slides, catalog, environment)
    for name in options.rerun:
        if name not in catalog.demo_names:
            raise BuildError(f"--rerun {name}: no such demo{closest(name, catalog.demo_names)}")
    if found.errors and not options.keep_going:
        raise BuildError("\n".join(str(e) for e in found.errors)) if len(found.errors) > 1 else found.errors[0]
    results = run_demos(found.calls, found.references, catalog, run_settings(options))
    if options.export_results:
        count = export_archive(results, catalog, options.size, options.export_results)
        print(f"exported {count} results to {options.export_results}", file=sys.stderr)
    renderer = SlideRenderer(environment, catalog, results, options.talk, keep_going=options.keep_going,
                             slide_errors=found.slide_errors)
    deck = render_slides(slides, renderer, found.references, options.root / ".cache" / "deck")
    write_atomically(deck_files(deck, environment, options), options.out)
    return deck


def deck_files(deck: RenderedDeck, environment, options: argparse.Namespace) -> dict[str, bytes | str]:
    """index.html and notes.html, plus the assets they link (none with --single-file)."""
    assets = third_party_assets(BUILDER / "node_modules")
    assets["assets/deck.css"] = ((options.templates / "deck.css").read_text() + "\n" + pygments_css()).encode()
    assets["assets/deck.js"] = (options.templates / "deck.js").read_bytes()
    stylesheets, scripts = link_tags(assets, options.single_file)
    index = environment.get_template("deck.html.j2").render(
        talk=options.talk, slides=deck.slides, footer=deck.footer, stylesheets=stylesheets, scripts=scripts,
        policy=content_security_policy(assets, options.single_file))
    notes = environment.get_template("notes.html.j2").render(
        talk=options.talk, slides=deck.slides, total_seconds=deck.total_seconds,
        stylesheet=Markup(f"<style>\n{assets['assets/deck.css'].decode()}\n</style>"))
    files = {"index.html": index, "notes.html": notes}
    if not options.single_file:
        files.update(assets)
    return files


def print_notes(deck: RenderedDeck, talk: dict) -> None:
    """Every slide's number, title, budget and notes, in order."""
    for slide in deck.slides:
        print(f"{slide.number:>3}. {slide.title or '(untitled)'}  [{format_minutes(slide.timing)}, "
              f"at {format_minutes(slide.start_seconds)}]  {slide.location}")
        for line in slide.notes_text.splitlines():
            print(f"      {line}")
        print()
    print(total_line(deck, talk))


def print_times(deck: RenderedDeck, talk: dict) -> None:
    """Rehearsal: each part of the talk (a slide file) with its budget and where it ends."""
    parts: dict[str, list] = {}
    for slide in deck.slides:
        parts.setdefault(slide.location.split(":")[0], []).append(slide)
    print(f"{'part':<24} {'first slide':<46} {'slides':>6} {'budget':>7} {'ends at':>8}")
    elapsed = 0
    for part, slides in parts.items():
        budget = sum(s.timing for s in slides)
        elapsed += budget
        print(f"{part.removeprefix('slides/'):<24} {slides[0].title[:46]:<46} {len(slides):>6} "
              f"{format_minutes(budget):>7} {format_minutes(elapsed):>8}")
    print(total_line(deck, talk))


def total_line(deck: RenderedDeck, talk: dict) -> str:
    target = talk["target_minutes"] * 60
    return (f"total: {format_minutes(deck.total_seconds)} for {len(deck.slides)} slides "
            f"(target {format_minutes(target)}, {'over' if deck.total_seconds > target else 'under'} by "
            f"{format_minutes(abs(deck.total_seconds - target))})")


def run_settings(options: argparse.Namespace) -> RunSettings:
    deck_config = options.config
    return RunSettings(root=options.root, builder=BUILDER, cache_dir=options.root / ".cache" / "deck",
                       device=options.device, size=options.size,
                       # --timeout applies to every demo; otherwise [tool.deck] sets a default and per-demo limits
                       timeout_s=options.timeout or deck_config.get("demo_timeout_s", 600),
                       timeouts={} if options.timeout else deck_config.get("timeouts", {}),
                       keep_going=options.keep_going,
                       rerun=tuple(options.rerun), fresh=options.fresh, results_archive=options.results)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="build", choices=["build", "notes", "serve", "pdf"],
                        help="build (default); notes: also print the speaker notes; serve: live preview; "
                             "pdf: also write deck.pdf and notes.pdf")
    parser.add_argument("--watch", action="store_true", help="same as the serve command")
    parser.add_argument("--port", type=int, default=8000, help="port for serve (on 127.0.0.1 only)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where demos run (auto: CUDA, then MPS, then CPU)")
    parser.add_argument("--size", default="full", choices=["full", "small"],
                        help="demo size: full for the talk, small for a quick check")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: dist/)")
    parser.add_argument("--root", type=Path, default=BUILDER,
                        help="the talk's folder, holding slides/ and demos/ (default: beside build.py)")
    parser.add_argument("--single-file", action="store_true",
                        help="inline every asset: index.html works when copied alone")
    parser.add_argument("--keep-going", action="store_true",
                        help="on a failing demo or slide, build anyway with an error card on that slide")
    parser.add_argument("--rerun", action="append", default=[], metavar="DEMO",
                        help="rerun this demo (module.function) even if cached; repeatable")
    parser.add_argument("--fresh", action="store_true", help="rerun every demo, ignoring the cache")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a demo may run before it is killed (default 600, or [tool.deck])")
    parser.add_argument("--export-results", type=Path, metavar="FILE.tar",
                        help="also write every result (with its provenance) to FILE.tar, to build elsewhere")
    parser.add_argument("--results", type=Path, metavar="FILE.tar",
                        help="use results from --export-results instead of running those demos here")
    parser.add_argument("--times", action="store_true",
                        help="with notes: each part's budget, where it ends, and the total against the target")
    options = parser.parse_args(argv)
    if options.watch:
        options.command = "serve"
    options.root = options.root.resolve()
    options.out = (options.out or options.root / "dist").resolve()
    options.templates = options.root / "templates" if (options.root / "templates").is_dir() else BUILDER / "templates"
    options.config = read_config(options.root / "pyproject.toml")
    options.talk = {**DEFAULT_TALK, **{k: v for k, v in options.config.items() if k in DEFAULT_TALK}}
    return options


def read_config(pyproject: Path) -> dict:
    try:
        with open(pyproject, "rb") as stream:
            return tomllib.load(stream).get("tool", {}).get("deck", {})
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise SystemExit(f"error: {pyproject}: {error}")


if __name__ == "__main__":
    sys.exit(main())
