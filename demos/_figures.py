"""Figures that the back row can read.

A slide shows a figure at its own size: one point of the figure is 4/3 px of the 1280x720 slide,
and reveal.js draws that slide at 0.96 of a 1280x720 screen. So text of FONT points is 22 px there,
however large the figure, and a figure of WIDTH x HEIGHT inches fills the slide under a heading.
"""
import math

from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

FONT = 17            # points
WIDTH = 12.0         # inches: the slide's width
HEIGHT = 5.2         # inches: what is left of the slide under a heading


def slide_figure(width: float = WIDTH, height: float = HEIGHT, **kwargs) -> Figure:
    """An empty figure, laid out so that larger text still fits."""
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def legible(*axes) -> None:
    """Ticks, axis labels, titles and legends of these axes at FONT points."""
    for ax in axes:
        ax.tick_params(which="both", labelsize=FONT)
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            text.set_fontsize(FONT)
        if ax.get_legend():
            for text in ax.get_legend().get_texts():
                text.set_fontsize(FONT)


def plain_log_ticks(axis) -> None:
    """A log axis labelled 0.05, 0.1, 0.2, ... or, over many decades, 0.001, 0.01, 0.1:
    plain numbers, no superscripts (those would be too small to read)."""
    low, high = axis.get_view_interval()
    few_decades = math.log10(high / low) < 2.5
    axis.set_major_locator(LogLocator(subs=(1, 2, 5) if few_decades else (1,)))
    axis.set_major_formatter("{x:g}")
    axis.set_minor_formatter(NullFormatter())
