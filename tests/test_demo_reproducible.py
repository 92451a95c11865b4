"""Two runs of a demo give the same values: only `measured` (numbers from timings) may differ."""
import importlib

import pytest

from demos._main import demos_in

MODULES = ["basics", "models", "crazy", "production"]
DEMOS = [(module, name) for module in MODULES
         for name in demos_in(importlib.import_module(f"demos.{module}"))]


@pytest.mark.slow
@pytest.mark.parametrize("module, name", DEMOS, ids=[f"{m}.{n}" for m, n in DEMOS])
def test_two_runs_give_identical_values(module, name):
    demo = getattr(importlib.import_module(f"demos.{module}"), name)
    first, second = demo("cpu", "small"), demo("cpu", "small")
    assert first.values == second.values
    assert set(first.measured) == set(second.measured)
