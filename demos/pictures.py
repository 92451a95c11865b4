"""Pictures that carry an idea: what autograd recorded, and what a random-depth network ran.

Both are drawn from the real thing: the graph is walked from ``loss.grad_fn`` of the talk's own
two-layer network, and the depths are the layers that forward hooks saw run, call after call.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from deck.result import Figure, Result
from demos._figures import FONT, NEUTRAL, PALETTE, PYTORCH, WIDTH
from demos.basics import init_params, numpy_to_torch, torch_logits, two_moons
from demos.crazy import RandomDepthMLP


# --- the graph autograd records ---------------------------------------------

def recorded_graph(loss: torch.Tensor, names: dict[int, str]) -> tuple[list[str], list[tuple[int, int]]]:
    """The nodes backward will visit, from loss.grad_fn down to the leaves, and the edges
    (node, input) between them: what ``next_functions`` holds, walked breadth first."""
    nodes, edges, index = [], [], {}
    queue = [loss.grad_fn]
    while queue:
        fn = queue.pop(0)
        if fn in index:
            continue
        index[fn] = len(nodes)
        leaf = getattr(fn, "variable", None)   # AccumulateGrad: where .grad of a leaf is written
        nodes.append(f"{names[id(leaf)]}.grad" if leaf is not None else type(fn).__name__)
        queue += [child for child, _ in fn.next_functions if child is not None]
    for fn, at in index.items():
        edges += [(at, index[child]) for child, _ in fn.next_functions if child is not None]
    return nodes, edges


def depths_from_loss(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Each node's longest distance from the loss: its column in the picture."""
    depth = [0] * count
    for _ in range(count):
        for parent, child in edges:
            depth[child] = max(depth[child], depth[parent] + 1)
    return depth


def draw_graph(nodes: list[str], edges: list[tuple[int, int]]):
    """Loss on the right, parameters on the left; arrows point the way gradients flow."""
    depth = depths_from_loss(len(nodes), edges)
    columns = max(depth) + 1
    row_of, rows = {}, {}
    for i, d in enumerate(depth):
        row_of[i] = rows.get(d, 0)
        rows[d] = row_of[i] + 1
    fig = MplFigure(figsize=(WIDTH, 4.6))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(-0.55, columns - 0.45), ylim=(-1.6, 0.8))
    ax.axis("off")
    place = {i: (columns - 1 - depth[i], -row_of[i] * 1.1) for i in range(len(nodes))}
    for i, name in enumerate(nodes):
        x, y = place[i]
        leaf = name.endswith(".grad")
        ax.add_patch(FancyBboxPatch((x - 0.45, y - 0.3), 0.9, 0.6, boxstyle="round,pad=0.02",
                                    facecolor="white" if leaf else "#FBE3D5", linewidth=2.5,
                                    edgecolor=PALETTE[0] if leaf else PYTORCH))
        ax.text(x, y, name.removesuffix("Backward0").replace("BinaryCrossEntropyWithLogits", "BCE with\nlogits"),
                ha="center", va="center", fontsize=FONT, linespacing=0.9)
    for parent, child in edges:
        ax.add_patch(FancyArrowPatch(place[parent], place[child], arrowstyle="-|>", mutation_scale=22,
                                     color=NEUTRAL, linewidth=2, shrinkA=40, shrinkB=40,
                                     connectionstyle="arc3,rad=0.0"))
    ax.text(columns - 1, 0.42, "loss.grad_fn", ha="center", fontsize=FONT, color=PYTORCH, weight="bold")
    return fig


def autograd_graph(device: str, size: str = "full") -> Result:
    """Run the two-layer network forward once and draw the graph autograd recorded."""
    X, y = two_moons(8)
    params = numpy_to_torch(init_params(2, 4), device, requires_grad=True)
    X, y = numpy_to_torch([X, y], device)
    loss = F.binary_cross_entropy_with_logits(torch_logits(params, X), y)
    names = {id(p): name for p, name in zip(params, ["W1", "b1", "W2", "b2"])}
    nodes, edges = recorded_graph(loss, names)
    print(f"loss.grad_fn is {nodes[0]}; backward visits {len(nodes)} nodes")
    operations = [n for n in nodes if not n.endswith(".grad")]
    alt = ("The graph autograd recorded for the two-layer network, from the loss on the right to the "
           f"parameters on the left: {' → '.join(operations)}, with arrows into "
           f"{', '.join(n for n in nodes if n.endswith('.grad'))}, where backward writes each gradient.")
    return Result(values={"nodes": nodes, "n_operations": len(operations), "loss_node": nodes[0]},
                  figures=[Figure(draw_graph(nodes, edges), alt=alt)])


# --- the layers a random-depth network ran -----------------------------------

def layers_run(model: RandomDepthMLP, x: torch.Tensor, calls: int) -> list[list[bool]]:
    """For each of ``calls`` training-mode forward passes, which hidden layers ran (seen by hooks)."""
    ran: list[bool] = []
    hooks = [layer.register_forward_hook(lambda *_, i=i: ran.__setitem__(i, True))
             for i, layer in enumerate(model.hidden)]
    seen = []
    model.train()
    for _ in range(calls):
        ran[:] = [False] * len(model.hidden)
        model(x)
        seen.append(list(ran))
    for hook in hooks:
        hook.remove()
    return seen


def draw_depths(seen: list[list[bool]]):
    """One column per call: input, the hidden layers (coloured where they ran), output."""
    depth = len(seen[0])
    fig = MplFigure(figsize=(WIDTH, 4.8))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(-0.5, len(seen) - 0.5), ylim=(-2.1, depth + 1.5))
    ax.axis("off")
    for call, ran in enumerate(seen):
        stack = [("input", True)] + [(f"hidden {i + 1}", r) for i, r in enumerate(ran)] + [("output", True)]
        for level, (name, used) in enumerate(stack):
            ax.add_patch(FancyBboxPatch((call - 0.38, level - 0.36), 0.76, 0.72, boxstyle="round,pad=0.02",
                                        linewidth=2, edgecolor=PYTORCH if used else NEUTRAL,
                                        facecolor="#FBE3D5" if used else "white", linestyle="-" if used else ":"))
            ax.text(call, level, name, ha="center", va="center", fontsize=FONT,
                    color="black" if used else NEUTRAL)
        ax.text(call, -0.75, f"call {call + 1}\ndepth {sum(ran)}", ha="center", va="top", fontsize=FONT,
                weight="bold", linespacing=1.0)
    return fig


def random_depths(device: str, size: str = "full", calls: int = 5) -> Result:
    """Call the random-depth network a few times and draw which of its layers each call ran."""
    model = RandomDepthMLP().to(device)
    seen = layers_run(model, torch.zeros(1, 2, device=device), calls)
    depths = [sum(ran) for ran in seen]
    print(f"depths of {calls} calls: {depths}")
    alt = (f"{calls} forward calls of the same random-depth network, side by side: each runs its input layer, "
           f"then the first {', '.join(map(str, depths))} of its {len(seen[0])} hidden layers (coloured), "
           "then its output layer; the layers a call skipped are dotted.")
    return Result(values={"depths": depths, "max_depth": len(seen[0]),
                          "prefix_only": all(ran == sorted(ran, reverse=True) for ran in seen)},
                  figures=[Figure(draw_depths(seen), alt=alt)])


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
