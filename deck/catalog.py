"""The demo catalog, read from the source of ``demos/*.py`` without importing it.

The builder must stay free of torch, so it learns what demos exist (and what
their code is) from the syntax tree: a demo is a public top-level function whose
first two parameters are ``device`` and ``size``.  What a demo's result depends
on is not guessed here: the worker records what each demo actually read.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from deck.boundary import check_inside, display
from deck.errors import BuildError, closest


@dataclass
class Function:
    """A top-level function or class of a demo module: what code() can show, and maybe a demo."""
    module: str               # "basics"
    name: str                 # "numpy_vs_torch"
    file: str                 # "demos/basics.py"
    line: int
    source: str               # the function's source, decorators included
    is_demo: bool

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class Module:
    functions: dict[str, Function] = field(default_factory=dict)


@dataclass
class Catalog:
    demos_dir: Path
    modules: dict[str, Module]

    @property
    def demo_names(self) -> list[str]:
        return [f.qualname for m in self.modules.values() for f in m.functions.values() if f.is_demo]

    def demo(self, qualname: str) -> Function:
        function = self.function(qualname)
        if not function.is_demo:
            raise KeyError(f"{qualname} is a function but not a demo (its first parameters "
                           "are not (device, size))")
        return function

    def function(self, qualname: str) -> Function:
        module, _, name = qualname.rpartition(".")
        if module in self.modules and name in self.modules[module].functions:
            return self.modules[module].functions[name]
        every = [f.qualname for m in self.modules.values() for f in m.functions.values()]
        raise KeyError(f"no demo function {qualname!r} in demos/{closest(qualname, every)}")

    def asset(self, filename: str) -> Path:
        path = self.demos_dir / filename
        if "/" in filename or "\\" in filename or filename.startswith(".") or not path.is_file():
            every = [p.name for p in self.demos_dir.iterdir() if p.is_file() and p.suffix != ".py"]
            raise KeyError(f"no file {filename!r} in demos/{closest(filename, every)}")
        return path

    def shown_code(self, name: str) -> tuple[str, str, str]:
        """(source, caption, file name for the highlighter) of what code(name) shows:
        a file in demos/ ("production.cpp") or a function ("basics.train_numpy")."""
        if "/" not in name and (self.demos_dir / name).is_file():
            path = self.asset(name)
            return path.read_text(encoding="utf-8"), f"demos/{path.name}", path.name
        if "." in name and name.rsplit(".", 1)[0] in self.modules:
            function = self.function(name)
            return function.source, f"{function.file}:{function.line} · {function.name}", "demo.py"
        return self.asset(name).read_text(encoding="utf-8"), f"demos/{name}", name  # asset() names what exists


def load_catalog(demos_dir: Path, root: Path) -> Catalog:
    check_inside(demos_dir, root)
    modules = {}
    for path in sorted(demos_dir.glob("*.py")):
        if path.name == "__init__.py":
            continue
        if not path.stem.isidentifier():
            package = demos_dir.joinpath(*path.stem.split(".")).with_suffix(".py")
            raise BuildError(f"a demo module's name must be a Python identifier: a demo named "
                             f"{path.stem}.FUNCTION would run {display(package, root)}, not this file",
                             file=display(path, root))
        modules[path.stem] = read_module(path, root)
    return Catalog(demos_dir=demos_dir, modules=modules)


def read_module(path: Path, root: Path) -> Module:
    shown = display(path, root)
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=shown)
    except SyntaxError as error:
        raise BuildError(f"syntax error in demo module: {error.msg}", file=shown, line=error.lineno) from None
    lines = source.splitlines(keepends=True)
    module = Module()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            parameters = [] if isinstance(node, ast.ClassDef) else \
                [a.arg for a in node.args.posonlyargs + node.args.args][:2]
            if node.name in module.functions:
                raise BuildError(f"{node.name} is defined twice in {shown} (first at line "
                                 f"{module.functions[node.name].line}); the second silently replaces the first, "
                                 "so rename one", file=shown, line=node.lineno)
            module.functions[node.name] = Function(
                module=path.stem, name=node.name, file=shown, line=node.lineno,
                source="".join(lines[first - 1:node.end_lineno]),
                is_demo=parameters == ["device", "size"] and not node.name.startswith("_"))
    return module
