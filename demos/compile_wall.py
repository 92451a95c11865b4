"""Part 4 of the talk: PyTorch's own compilers meet the same wall as tf.function.

The random-depth network of ``demos/crazy.py`` draws its depth with ``.item()``,
a Python int.  ``torch.compile`` cannot put a Python int it has not seen into a
graph: it breaks the graph there, runs that line in Python, and compiles the
rest once for every depth it meets (a recompile per depth), so every call still
gets its own depth.  ``torch.export`` must produce one graph with no Python, so
it refuses the model.  Written with ``torch.cond`` (the depth a tensor, each
layer a branch in the graph) it exports as one graph that still draws a new
depth on every call.
"""
from __future__ import annotations

import torch
from torch._dynamo.utils import counters

from deck.result import Result, Table
from demos._timing import cell, measure, once
from demos.crazy import RandomDepthMLP

SIZES = {"small": dict(width=16, max_depth=3, calls=20),
         "full": dict(width=64, max_depth=6, calls=60)}


class CondDepthMLP(RandomDepthMLP):  # the depth is a tensor: one graph
    def forward(self, x):
        depth = torch.randint(1, len(self.hidden) + 1, (), device=x.device)
        h = torch.relu(self.inp(x))
        for i, layer in enumerate(self.hidden):
            h = torch.cond(i < depth, lambda h: h + torch.relu(layer(h)),
                           lambda h: h.clone(), (h,))
        return self.out(h)


def answers(outputs) -> int:
    """How many different answers the same input got (one per depth used)."""
    return len({tuple(out.cpu().flatten().round(decimals=5).tolist()) for out in outputs})


def compiled_run(model, x, calls: int, device: str) -> dict:
    """torch.compile the model and call it: graphs compiled, graph breaks, answers, times."""
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model)
    first, first_t = once(lambda: compiled(x), device)
    outputs = [first] + [compiled(x) for _ in range(calls - 1)]
    return {"graphs": counters["stats"]["unique_graphs"],
            "breaks": sum(counters["graph_break"].values()),
            "answers": answers(outputs), "first": first_t,
            "later": measure(lambda: compiled(x), device)}


def export_error(model, x) -> str:
    """torch.export of the model: '' if it exports, else the name of the error it raised."""
    try:
        torch.export.export(model, (x,))
    except Exception as error:  # what export says is the point here
        print(f"torch.export: {type(error).__name__}: {str(error).splitlines()[0]}")
        return type(error).__name__
    return ""


def exported_run(model, x, calls: int, device: str) -> dict:
    """torch.export the model, then call the exported program."""
    program, export_t = once(lambda: torch.export.export(model, (x,)), device)
    run = program.module()
    conds = sum(node.target is torch.ops.higher_order.cond for node in program.graph.nodes)
    return {"conds": conds, "answers": answers([run(x) for _ in range(calls)]),
            "first": export_t, "later": measure(lambda: run(x), device)}


def random_depth_compiled(device: str, size: str = "full") -> Result:
    """The random-depth MLP under torch.compile and torch.export, and the torch.cond way."""
    cfg = SIZES[size]
    torch.manual_seed(0)
    model = RandomDepthMLP(cfg["width"], cfg["max_depth"]).to(device)
    cond_model = CondDepthMLP(cfg["width"], cfg["max_depth"]).to(device)
    x = torch.randn(8, 2, device=device)
    with torch.no_grad():
        eager = answers([model(x) for _ in range(cfg["calls"])])
        compiled = compiled_run(model, x, cfg["calls"], device)
        refused = export_error(model, x)
        exported = exported_run(cond_model, x, cfg["calls"], device)
    print(f"eager: {eager} different answers in {cfg['calls']} calls")
    print(f"torch.compile: {compiled['graphs']} graphs, {compiled['breaks']} graph break(s), "
          f"{compiled['answers']} different answers")
    print(f"torch.cond + torch.export: {exported['answers']} different answers")
    table = Table(["", "what it made", "different answers", "first call", "later calls (median)"],
                  [["torch.compile(model)", f"{compiled['graphs']} graphs, "
                    f"{compiled['breaks']} graph break", compiled["answers"],
                    cell(compiled["first"]), cell(compiled["later"])],
                   ["torch.cond, torch.export", f"1 graph, {exported['conds']} torch.cond",
                    exported["answers"], f"export: {cell(exported['first'])}",
                    cell(exported["later"])]],
                  caption=f"{cfg['calls']} calls on one input, depth 1 to {cfg['max_depth']}, "
                          f"eager: {eager} different answers; {device}")
    return Result(
        values={"calls": cfg["calls"], "max_depth": cfg["max_depth"], "eager_answers": eager,
                "compiled_graphs": compiled["graphs"], "graph_breaks": compiled["breaks"],
                "compiled_answers": compiled["answers"], "export_error": refused,
                "cond_answers": exported["answers"], "cond_ops": exported["conds"]},
        tables=[table],
        timings={"compile_first": compiled["first"], "compiled_call": compiled["later"],
                 "cond_export": exported["first"], "cond_call": exported["later"]})


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
