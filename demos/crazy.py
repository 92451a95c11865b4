"""Part #4 of the talk: "Going crazy, try doing this in TensorFlow".

A fully connected network that draws its own depth on every forward pass (a
plain Python loop), and a fixed mask that zeroes chosen gradients with a hook,
so the masked weights never move.  Both are a few lines of ordinary Python in
PyTorch; in a static graph (TensorFlow 1.x) both needed graph surgery.
"""
from __future__ import annotations

import math

import matplotlib
import numpy
import torch
from matplotlib.colors import LogNorm
from torch import nn

from deck.result import Figure, Result
from demos._figures import PALETTE, SEQUENTIAL, legible, plain_log_ticks, slide_figure
from demos._timing import one_thread

SIZES = {"small": dict(points=400, steps=300),
         "full": dict(points=1000, steps=1500)}


def make_spirals(points: int, noise: float = 0.15):
    """Two interleaved 2-D spirals, classes 0 and 1 (made here, no download)."""
    label = torch.arange(points) % 2
    t = torch.rand(points) * 3 * math.pi + 0.5  # angle along the arm
    arm = t + math.pi * label               # class 1 is rotated 180°
    x = torch.stack([t * torch.cos(arm), t * torch.sin(arm)], dim=1) / 5
    return x + noise * torch.randn_like(x), label


class RandomDepthMLP(nn.Module):  # runs a random number of its layers
    def __init__(self, width: int = 64, max_depth: int = 6):
        super().__init__()
        self.inp = nn.Linear(2, width)
        self.hidden = nn.ModuleList(
            nn.Linear(width, width) for _ in range(max_depth))
        self.out = nn.Linear(width, 2)

    def forward(self, x):  # plain Python control flow
        h = torch.relu(self.inp(x))
        if self.training:  # a new depth on every call
            self.depth = torch.randint(1, len(self.hidden) + 1, ()).item()
            for layer in self.hidden[:self.depth]:
                h = h + torch.relu(layer(h))  # residual
            return self.out(h)
        chances = []  # eval: average the prediction of every depth
        for layer in self.hidden:
            h = h + torch.relu(layer(h))
            chances.append(self.out(h).softmax(-1))
        return torch.stack(chances).mean(0).log()


def mask_gradient(param: torch.Tensor, mask: torch.Tensor):
    """Zero the gradient where mask is 0: those weights can never change."""
    return param.register_hook(lambda grad: grad * mask)


def freeze_lower_triangles(model: RandomDepthMLP) -> dict:
    """Mask every hidden weight matrix below its diagonal; return the masks."""
    masks = {}
    for layer in model.hidden:
        mask = torch.ones_like(layer.weight).triu()   # 1 = trainable
        mask_gradient(layer.weight, mask)
        masks[layer.weight] = mask
    return masks


def train(model, x, y, steps: int, lr: float = 0.05):
    """Full-batch training; returns the loss and the depth used at each step."""
    # SGD with momentum: a weight whose gradient is always zero keeps a zero
    # momentum and never moves. AdamW's decoupled weight decay (or any
    # weight_decay) would shrink the masked weights although their gradient is 0.
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses, depths = [], []
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        depths.append(model.depth)
    return losses, depths


def evaluate(model, x, y) -> tuple[float, float]:
    """Loss and accuracy in eval mode: the prediction averaged over every depth."""
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    return loss, accuracy


def weight_changes(masks: dict, before: dict):
    """How far each masked and each trainable weight moved (flat tensors)."""
    moved = {p: p.detach() - before[p] for p in masks}
    frozen = torch.cat([moved[p][m == 0] for p, m in masks.items()])
    trained = torch.cat([moved[p][m == 1] for p, m in masks.items()])
    return frozen, trained


def _depth_and_loss_figure(depths, losses, max_depth) -> Figure:
    fig = slide_figure(height=4.6)
    left, right = fig.subplots(1, 2)
    counts = [depths.count(d) for d in range(1, max_depth + 1)]
    left.bar(range(1, max_depth + 1), counts, color=PALETTE[0])
    left.set(xlabel="depth used", ylabel="training steps",
             title="Depth drawn per step")
    right.plot(losses, color=PALETTE[1], linewidth=1)
    right.set(xlabel="step", ylabel="cross-entropy", title="Training loss")
    legible(left, right)
    alt = (f"Left: bar chart of how many of the {len(depths)} training steps "
           f"used each depth from 1 to {max_depth}; each depth was drawn "
           f"between {min(counts)} and {max(counts)} times. "
           f"Right: the training loss per step, "
           f"from {losses[0]:.2f} at the first step to {losses[-1]:.2f} at "
           f"the last, noisy because the "
           f"depth changes every step.")
    return Figure(fig, alt=alt)


def _weight_change_figure(change: torch.Tensor, n_frozen: int) -> Figure:
    fig = slide_figure(width=8, height=5.3)
    ax = fig.subplots()
    cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad="lightgrey")
    exactly_zero = numpy.ma.masked_equal(change.numpy(), 0.0)  # drawn grey
    image = ax.imshow(exactly_zero, cmap=cmap, norm=LogNorm(),
                      interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax)
    colorbar.set_label("|final − initial| (grey: exactly 0)")
    plain_log_ticks(colorbar.ax.yaxis)
    ax.set(title="Change of hidden layer 1's weights",
           xlabel="input unit", ylabel="output unit")
    legible(ax, colorbar.ax)
    alt = ("Heat map of how much each weight of the first hidden layer changed "
           "in training, grey where the change is exactly zero. The whole "
           f"lower triangle below the diagonal is grey: those {n_frozen} "
           "masked weights did not change at all. The upper triangle, which "
           "was trainable, is coloured: those weights changed (a few stay "
           "grey where a unit was never active).")
    return Figure(fig, alt=alt)


def random_depth_masked(device: str, size: str = "full", seed: int = 0) -> Result:
    """Train the random-depth MLP with frozen lower triangles on two spirals."""
    torch.manual_seed(seed)
    cfg = SIZES[size]
    x, y = make_spirals(cfg["points"])
    x, y = x.to(device), y.to(device)
    model = RandomDepthMLP().to(device)
    masks = freeze_lower_triangles(model)
    before = {p: p.detach().clone() for p in masks}
    with one_thread():
        initial_loss, initial_accuracy = evaluate(model, x, y)
        losses, depths = train(model, x, y, cfg["steps"])
        final_loss, accuracy = evaluate(model, x, y)

    frozen, trained = weight_changes(masks, before)
    unchanged = all(torch.equal(p[m == 0], before[p][m == 0])
                    for p, m in masks.items())
    first = model.hidden[0].weight
    change = (first.detach() - before[first]).abs().cpu()

    print(f"depths drawn: {sorted(set(depths))}; masked weights unchanged: "
          f"{unchanged}")
    print(f"loss {initial_loss:.3f} -> {final_loss:.3f}, "
          f"accuracy {initial_accuracy:.1%} -> {accuracy:.1%}")
    return Result(
        values={
            "masked_weights_unchanged": unchanged,
            "n_masked": frozen.numel(),
            "max_masked_change": frozen.abs().max().item(),
            "n_unmasked": trained.numel(),
            "max_unmasked_change": trained.abs().max().item(),
            "depths_seen": sorted(set(depths)),
            "max_depth": len(model.hidden),
            "steps": cfg["steps"],
            "initial_loss": initial_loss,
            "final_loss": final_loss,
            # the training loss over the last 5% of steps, at random depths
            "final_train_loss": sum(losses[-cfg["steps"] // 20:])
            / (cfg["steps"] // 20),
            "first_train_loss": losses[0],
            "initial_accuracy": initial_accuracy,
            "accuracy": accuracy,
        },
        figures=[_depth_and_loss_figure(depths, losses, len(model.hidden)),
                 _weight_change_figure(change, int((masks[first] == 0).sum()))],
    )


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
