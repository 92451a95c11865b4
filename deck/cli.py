"""The ``deck`` command (installed by ``pip install -e .``): ``deck build|notes|serve|pdf [options]``
does exactly what ``python build.py build|notes|serve|pdf [options]`` does.

``build.py`` stays the file a reader opens to see the pipeline top to bottom, so this command
does not hold a second copy of it: it runs that file's ``main()``, from the checkout the
package was installed from (the talk's folders, like the builder's templates and
``node_modules/``, are always read from a checkout, never installed).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build.py"


def main(argv: list[str] | None = None) -> int:
    if not BUILD_SCRIPT.is_file():
        print(f"error: {BUILD_SCRIPT} is missing: the deck command runs the build.py of the checkout it was "
              "installed from (pip install -e . in the talk's folder)", file=sys.stderr)
        return 1
    spec = importlib.util.spec_from_file_location("deck_build_script", BUILD_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script   # as an import would: its dataclasses look their module up there
    spec.loader.exec_module(script)
    return script.main(argv)
