"""What a demo read and what it wrote, seen through Python's audit hooks while it runs.

Each file or folder under the talk's folder that the demo opens, imports, lists or hands to a
program is hashed the first time it is read: the result depends on that content.  When the demo
ends, each is hashed again; one that differs was edited while the demo ran, and the result is not
kept (``changed``).  What the demo itself wrote is its output, not a dependency: a file it wrote,
anything inside a folder it made, and its temporary folder (which lies inside the talk's folder when
TMPDIR does; a library such as ``torch.save`` writes from C, out of the hook's sight).  Writing into a
protected folder (the slides, the templates, the output folder) is refused and recorded.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from deck.result import file_hash, folder_hash

NOT_DEPENDENCIES = (".cache", "dist", "node_modules", ".git")   # folders of the talk that demos never depend on
WRITES = {   # audit event -> positions of the paths it changes
    "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.truncate": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,), "os.symlink": (1,), "os.link": (1,),
    "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (0, 1),
    "shutil.copymode": (1,), "shutil.copystat": (1,),
}


def reading_source_for_a_traceback() -> bool:
    """linecache reads source files to print a traceback or a warning (torch.manual_seed keeps one):
    showing code is not depending on it."""
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith("linecache.py"):
            return True
        frame = frame.f_back
    return False


def opened_for_writing(mode, flags: int) -> bool:
    if mode:
        return not ("r" in mode and "+" not in mode)
    return flags & os.O_ACCMODE != os.O_RDONLY or bool(flags & (os.O_CREAT | os.O_TRUNC | os.O_APPEND))


class ReadLog:
    """The audit hook of one demo's process (``audit``) and what it saw."""

    def __init__(self, root: str, protected: tuple[str, ...] = (), scratch: str = ""):
        self.root = os.path.realpath(root) + os.sep
        self.scratch = os.path.realpath(scratch) + os.sep if scratch else ""   # the demo server's own folder
        self.protected = tuple(os.path.realpath(folder) + os.sep for folder in protected)
        self.read: dict[str, str] = {}       # talk-relative path -> hash of the content when first read
        self.made: set[str] = set()          # talk-relative paths the demo wrote itself
        self.refused: list[str] = []         # protected paths the demo tried to change
        self.hashing = False

    def audit(self, event: str, args: tuple) -> None:
        if self.hashing:   # our own reads, while hashing
            return
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, (str, bytes, os.PathLike)):
                return   # a file descriptor
            if opened_for_writing(mode, flags):
                self.wrote(path)
            elif not reading_source_for_a_traceback():
                self.note(path)
        elif event in WRITES:
            for position in WRITES[event]:
                if position < len(args) and isinstance(args[position], (str, bytes, os.PathLike)):
                    self.wrote(args[position])
        elif event in ("os.listdir", "os.scandir") and isinstance(args[0], (str, bytes)):
            if not sys._getframe(1).f_code.co_filename.startswith("<frozen importlib"):  # not import's own search
                self.note(args[0], folder=True)
        elif event == "subprocess.Popen" and isinstance(args[1], (list, tuple)):
            for argument in args[1]:   # a file of the talk handed to a program (g++ demos/x.cpp)
                if isinstance(argument, (str, bytes)) and os.path.isfile(argument):
                    self.note(argument)

    def absolute(self, path) -> str:
        return os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(path)))

    def relative(self, absolute: str) -> str | None:
        """The talk-relative name of a dependency, or None if it is not one."""
        if "__pycache__" in absolute and absolute.endswith(".pyc"):
            absolute = importlib.util.source_from_cache(absolute)
        if not (absolute + os.sep).startswith(self.root):
            return None
        if self.scratch and (os.path.realpath(absolute) + os.sep).startswith(self.scratch):
            return None
        relative = os.path.relpath(absolute, self.root)
        return None if relative.split(os.sep)[0] in NOT_DEPENDENCIES else relative

    def own(self, relative: str) -> bool:
        """Whether the demo wrote this path, or made a folder it lies in."""
        parts = relative.rstrip("/").split(os.sep)
        return any(os.sep.join(parts[:end]) in self.made for end in range(1, len(parts) + 1))

    def wrote(self, path) -> None:
        absolute = self.absolute(path)
        real = os.path.realpath(absolute)
        folder = next((f for f in self.protected if (real + os.sep).startswith(f)), None)
        if folder:
            self.refused.append(real)
            raise PermissionError(f"a demo may not change {real}: {folder.rstrip(os.sep)} belongs to the build")
        relative = self.relative(absolute)
        if relative is not None:
            self.made.add(relative)

    def note(self, path, folder: bool = False) -> None:
        absolute = self.absolute(path)
        relative = self.relative(absolute)
        if relative is None or self.own(relative):
            return
        if folder or os.path.isdir(absolute):
            if not folder:
                return   # a folder opened (to read a file in it by fd, say) is not its listing
            relative = relative.rstrip(os.sep) + "/"
        if relative not in self.read:
            self.read[relative] = self.hash(relative)

    def hash(self, relative: str) -> str:
        self.hashing = True
        try:
            path = os.path.join(self.root, relative)
            return folder_hash(path) if relative.endswith("/") else file_hash(path)
        finally:
            self.hashing = False

    def modules(self, names: set[str]) -> None:
        """Modules of the talk imported without an open the hook saw (a frozen or cached loader)."""
        for name in names:
            filename = getattr(sys.modules.get(name), "__file__", None)
            if filename:
                self.note(filename)

    def changed(self) -> list[str]:
        """What was read and is different now: edited while the demo ran."""
        return sorted(relative for relative, digest in self.dependencies().items() if self.hash(relative) != digest)

    def dependencies(self) -> dict[str, str]:
        """Each dependency with the hash of the content the demo read (what it wrote itself excluded)."""
        return {relative: digest for relative, digest in sorted(self.read.items())
                if not self.own(relative)}
