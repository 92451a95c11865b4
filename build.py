#!/usr/bin/env python3
"""Build the talk: slides/*.md + demos/*.py -> dist/index.html, an offline reveal.js deck.

    python build.py                  build the deck (runs the demos it needs, cached)
    python build.py notes [--times]  also print the speaker notes (and claims), write dist/notes.html
    python build.py serve [--port N] live preview on 127.0.0.1, rebuilt on every change
    python build.py pdf              also write dist/deck.pdf and dist/notes.pdf (headless Chromium)
    python build.py COMMAND --help   every option

The pipeline, top to bottom: load the slides, find the demo references, run
what the cache does not have (in a demo server; this process never imports
torch), render Markdown + Jinja + Pygments, write the deck atomically.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path

from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from deck.archive import export_archive
from deck.boundary import check_inside
from deck.browser import write_pdfs
from deck.catalog import Catalog, load_catalog
from deck.config import check_timeouts, read_config
from deck.errors import BuildError, closest
from deck.live import slide_facts
from deck.memo import Memo, files_under
from deck.output import (REVEAL_FILES, build_lock, check_output_folder, content_security_policy, link_tags,
                         own_output_folder, third_party_assets, write_atomically)
from deck.provenance import provenance_rows, provenance_slide
from deck.references import scan
from deck.render import (RenderedDeck, RenderedSlide, SlideRenderer, format_minutes, make_environment,
                         page_environment, render_slides)
from deck.render_cache import RenderCache
from deck.result import DemoCall, Result
from deck.runner import DemoServer, DemoStarted, RunSettings, remember, run_demos, run_now
from deck.serve import serve
from deck.slide_functions import pygments_css
from deck.slides import load_slides

BUILDER = Path(__file__).resolve().parent
WORDS_PER_MINUTE = 160   # notes --times flags a slide whose notes need more than this to be said in its budget
CODE_WORDS_PER_MINUTE = 130   # ... and this on a slide with a code listing: the room is reading the code too


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_arguments(argv)
    except BuildError as error:   # pyproject.toml's [tool.deck]
        print(f"error: {error}", file=sys.stderr)
        return 1
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop_like_ctrl_c)
    if not options.talk["presenter"]:
        print("warning: no presenter is set: add presenter = \"Your Name\" to [tool.deck] in pyproject.toml",
              file=sys.stderr)
    started = time.perf_counter()
    try:
        if options.command == "serve":
            watched = [options.root / "slides", options.root / "demos", options.templates]
            memo = Memo()
            with DemoServer(run_settings(options, memo)) as server:
                live = LiveDeck(options, server, memo)
                return serve(live.build, live.rerun, options.out, watched, options.port,
                             BUILDER / "templates" / "live.js")
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
    """SIGTERM and SIGHUP end a build the way Ctrl-C does: the demos are stopped, the last deck kept."""
    raise KeyboardInterrupt


@dataclasses.dataclass
class LiveDeck:
    """serve's deck: rebuilt on every change and a demo rerun when the open deck asks, with one demo server
    for all of them (started by the first demo that runs, then kept warm) and what each rebuild reuses from
    the last (``memo``). A demo rerun from the deck keeps its own result from then on, even where --results
    has one."""
    options: argparse.Namespace
    server: DemoServer
    memo: Memo
    rerun_here: set[str] = dataclasses.field(default_factory=set)   # the demos rerun from the deck so far

    def now(self) -> argparse.Namespace:
        return argparse.Namespace(**{**vars(self.options), "rerun_here": frozenset(self.rerun_here)})

    def build(self, on_start: DemoStarted | None = None) -> RenderedDeck:
        return locked_build(self.now(), memo=self.memo, on_start=on_start, server=self.server)

    def rerun(self, demo: str) -> RenderedDeck:
        deck = rerun_live(self.now(), demo, self.memo, self.server)
        self.rerun_here.add(demo)
        return deck


def locked_build(options: argparse.Namespace, fresh: dict[DemoCall, Result] | None = None,
                 memo: Memo | None = None, *, on_start: DemoStarted | None = None,
                 server: DemoServer | None = None) -> RenderedDeck:
    """build() under the talk's lock."""
    check_output_folder(options.out, options.root, BUILDER)   # before the lock: a refused build writes nothing
    with build_lock(options.cache):
        return build(options, fresh, memo or Memo(), on_start=on_start, server=server)


def rerun_live(options: argparse.Namespace, demo: str, memo: Memo, server: DemoServer) -> RenderedDeck:
    """serve's rerun: run one demo of the deck now and rebuild with its new result, which is kept (cached)
    only if the slides that show it build with it: a demo that fails or a claim it makes false raises, and
    nothing changes. With --keep-going, another demo's failure or another slide's error does not stop it."""
    slides = load_slides(options.root / "slides", options.root, memo)
    found = scan(slides, read_catalog(options, memo), slide_environment(options, memo), options.cache / "scan.json")
    calls = [call for call in found.calls if call.demo == demo]
    if not calls:
        raise BuildError(f"{demo} is not a demo this deck shows")
    fresh = run_now(calls, found.references, run_settings(options, memo, server=server))
    failed = [result.error for result in fresh.values() if result.failed]
    if failed:
        raise BuildError(failed[0])
    deck = locked_build(options, fresh, memo, server=server)
    remember(fresh, run_settings(options, memo))
    return deck


def build(options: argparse.Namespace, fresh: dict[DemoCall, Result] | None, memo: Memo, *,
          on_start: DemoStarted | None = None, server: DemoServer | None = None) -> RenderedDeck:
    """The deck; ``fresh`` results (a live rerun's) replace what the cache holds for those calls, and the
    slides showing them must render without an error, even with --keep-going; ``memo`` holds what an
    earlier build in this process computed from files that have not changed since; ``on_start`` and
    ``server``: serve's progress callback and the demo server it keeps (run_settings)."""
    own_output_folder(options.out, options.root, BUILDER)
    if options.templates.is_relative_to(options.root):
        check_inside(options.templates, options.root)
    slides = load_slides(options.root / "slides", options.root, memo)
    catalog = read_catalog(options, memo)
    check_timeouts(options.config, catalog.demo_names, options.root / "pyproject.toml")
    environment = slide_environment(options, memo)
    found = scan(slides, catalog, environment, options.cache / "scan.json")
    for name in options.rerun:
        if name not in catalog.demo_names:
            raise BuildError(f"--rerun {name}: no such demo{closest(name, catalog.demo_names)}")
    if found.errors and not options.keep_going:
        raise BuildError("\n".join(str(e) for e in found.errors)) if len(found.errors) > 1 else found.errors[0]
    settings = run_settings(options, memo, on_start, server)
    results = {**run_demos(found.calls, found.references, settings), **(fresh or {})}
    if options.export_results:
        count = export_archive(results, options.size, options.export_results)
        print(f"exported {count} results to {options.export_results}", file=sys.stderr)
    pages = page_environment(options.templates, options.cache)
    renderer = SlideRenderer(environment, pages, catalog, results, options.talk, keep_going=options.keep_going,
                             slide_errors=found.slide_errors)
    rendered = render_slides(slides, renderer, found.references, RenderCache(options.cache, options.templates, memo))
    showing_fresh = {reference.slide for reference in found.references if reference.call in (fresh or {})}
    broken = [slide.error for slide in rendered if slide.error and slide.number in showing_fresh]
    if broken:
        raise BuildError(broken[0])
    deck = with_provenance(rendered, provenance_rows(results), pages)
    assets = memo.of_files(("assets", options.single_file), asset_sources(options), lambda: read_assets(options))
    write_atomically(deck_files(deck, pages, options, slide_facts(found.references, results), assets), options.out)
    return deck


def read_catalog(options: argparse.Namespace, memo: Memo) -> Catalog:
    """The demos and functions defined in demos/, parsed again only when a file there has changed."""
    demos = options.root / "demos"
    return memo.of_files(("catalog", demos), files_under(demos), lambda: load_catalog(demos, options.root))


def slide_environment(options: argparse.Namespace, memo: Memo) -> SandboxedEnvironment:
    """The sandbox slide text is rendered in, made again only when a template has changed."""
    return memo.of_files(("slide environment", options.templates), files_under(options.templates),
                         lambda: make_environment(options.templates))


def asset_sources(options: argparse.Namespace) -> list[Path]:
    return [BUILDER / "node_modules" / source for source in REVEAL_FILES.values()] + \
        [options.templates / "deck.css", options.templates / "deck.js"]


def read_assets(options: argparse.Namespace) -> tuple[dict[str, bytes], dict[str, object]]:
    """The files the deck links (reveal.js's, and the deck's own stylesheet, with Pygments', and script),
    and what the page's head says of them: the tags that link them (or inline them) and the policy."""
    assets = third_party_assets(BUILDER / "node_modules")
    assets["assets/deck.css"] = ((options.templates / "deck.css").read_text() + "\n" + pygments_css()).encode()
    assets["assets/deck.js"] = (options.templates / "deck.js").read_bytes()
    stylesheets, scripts = link_tags(assets, options.single_file)
    return assets, {"stylesheets": stylesheets, "scripts": scripts,
                    "policy": content_security_policy(assets, options.single_file)}


def with_provenance(slides: list[RenderedSlide], rows: list[dict], pages) -> RenderedDeck:
    """The deck: the slides, then a backup slide saying where each number was measured."""
    slides = slides + [provenance_slide(pages, rows, number=len(slides) + 1)]
    elapsed = 0
    for slide in slides:
        slide.start_seconds = elapsed
        elapsed += slide.timing
    return RenderedDeck(slides=slides)


def deck_files(deck: RenderedDeck, pages, options: argparse.Namespace, facts: dict,
               assets: tuple[dict[str, bytes], dict[str, object]]) -> dict[str, bytes | str]:
    """index.html and notes.html, plus the assets they link (none with --single-file)."""
    assets, head = assets
    index = pages.get_template("deck.html.j2").render(
        talk=options.talk, slides=deck.slides, facts=facts, **head)
    notes = pages.get_template("notes.html.j2").render(
        talk=options.talk, slides=deck.slides, total_seconds=deck.total_seconds,
        stylesheet=Markup(f"<style>\n{assets['assets/deck.css'].decode()}\n</style>"))
    files = {"index.html": index, "notes.html": notes}
    if not options.single_file:
        files.update(assets)
    return files


def print_notes(deck: RenderedDeck, talk: dict) -> None:
    """Every slide's number, title, budget, notes and claims, in order."""
    for slide in deck.slides:
        print(f"{slide.number:>3}. {slide.title or '(untitled)'}  [{format_minutes(slide.timing)}, "
              f"at {format_minutes(slide.start_seconds)}]  {slide.location}")
        for line in slide.notes_text.splitlines():
            print(f"      {line}")
        for claim in slide.claims:
            outcome = {True: "holds", False: "FALSE", None: "not checked"}[claim["holds"]]
            print(f"      claim: {claim['statement']} [{outcome}] {claim['detail']}")
        print()
    print(total_line(deck, talk))


def print_times(deck: RenderedDeck, talk: dict) -> None:
    """Rehearsal: each part of the talk (a slide file) with its budget and where it ends, then the
    slides whose notes cannot be said in their budget."""
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
    for slide in deck.slides:
        words = len(slide.notes_text.split())
        pace = CODE_WORDS_PER_MINUTE if 'class="highlight"' in slide.html else WORDS_PER_MINUTE
        if words > pace * slide.timing / 60:
            print(f"too long to say: slide {slide.number} ({slide.location}) has {words} words of notes for "
                  f"{format_minutes(slide.timing)}, over {pace} words a minute")


def total_line(deck: RenderedDeck, talk: dict) -> str:
    target = talk["target_minutes"] * 60
    return (f"total: {format_minutes(deck.total_seconds)} for {len(deck.slides)} slides "
            f"(target {format_minutes(target)}, {'over' if deck.total_seconds > target else 'under'} by "
            f"{format_minutes(abs(deck.total_seconds - target))})")


def run_settings(options: argparse.Namespace, memo: Memo, on_start: DemoStarted | None = None,
                 server: DemoServer | None = None) -> RunSettings:
    """How this build runs demos; serve adds a demo server it keeps and a callback told as each demo starts."""
    config = options.config
    return RunSettings(root=options.root, builder=BUILDER, cache_dir=options.cache,
                       device=options.device, size=options.size,
                       # --timeout applies to every demo; otherwise [tool.deck] sets a default and per-demo limits
                       timeout_s=options.timeout or config.demo_timeout_s,
                       timeouts={} if options.timeout else dict(config.timeouts),
                       env=config.env, preload=config.preload, keep_going=options.keep_going,
                       rerun=tuple(options.rerun), fresh=options.fresh, results_archive=options.results,
                       rerun_here=options.rerun_here,
                       protected=(options.root / "slides", options.templates, options.out), memo=memo,
                       on_start=on_start, server=server)


COMMANDS = {"build": "build the deck (the default)", "notes": "build, print the speaker notes and claims",
            "serve": "live preview on 127.0.0.1, rebuilt on every change",
            "pdf": "build, then write deck.pdf and notes.pdf"}
TAKES_VALUE = {"--device", "--size", "--out", "--root", "--rerun", "--timeout", "--export-results", "--results",
               "--port"}


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    given = [i for i, word in enumerate(argv) if word in COMMANDS and (i == 0 or argv[i - 1] not in TAKES_VALUE)]
    if given:   # the command first: `build.py --size small notes` means `build.py notes --size small`
        argv.insert(0, argv.pop(given[0]))
    elif not argv or argv[0] not in ("-h", "--help"):
        argv.insert(0, "build")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where demos run (auto: CUDA, then MPS, then CPU)")
    common.add_argument("--size", default="full", choices=["full", "small"],
                        help="demo size: full for the talk, small for a quick check")
    common.add_argument("--out", type=Path, default=None, help="output folder (default: dist/)")
    common.add_argument("--root", type=Path, default=BUILDER,
                        help="the talk's folder, holding slides/ and demos/ (default: beside build.py)")
    common.add_argument("--single-file", action="store_true",
                        help="inline every asset: index.html works when copied alone")
    common.add_argument("--keep-going", action="store_true",
                        help="on a failing demo, slide or claim, build anyway with an error card on that slide")
    common.add_argument("--rerun", action="append", default=[], metavar="DEMO",
                        help="rerun this demo (module.function) even if cached; repeatable")
    common.add_argument("--fresh", action="store_true", help="rerun every demo, ignoring the cache")
    common.add_argument("--timeout", type=float, default=None,
                        help="seconds a demo may run before it is killed (default 600, or [tool.deck])")
    common.add_argument("--export-results", type=Path, metavar="FILE.tar",
                        help="also write every result (with its provenance) to FILE.tar, to build elsewhere")
    common.add_argument("--results", type=Path, metavar="FILE.tar",
                        help="use results from --export-results instead of running those demos here")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {name: commands.add_parser(name, parents=[common], help=text) for name, text in COMMANDS.items()}
    parsers["notes"].add_argument("--times", action="store_true",
                                  help="each part's budget, where it ends, the total against the target, "
                                       "and slides whose notes are too long for their budget")
    parsers["serve"].add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    options = parser.parse_args(argv)
    options.root = options.root.resolve()
    options.out = (options.out or options.root / "dist").resolve()
    options.cache = options.root / ".cache" / "deck"
    options.templates = options.root / "templates" if (options.root / "templates").is_dir() else BUILDER / "templates"
    options.config = read_config(options.root / "pyproject.toml")
    options.talk = options.config.talk
    options.rerun_here = frozenset()   # serve's: the demos rerun from the open deck so far
    return options


if __name__ == "__main__":
    sys.exit(main())
