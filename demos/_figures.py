"""Figures that the back row can read, in one colour-blind-safe palette.

A slide shows a figure at its own size: one point of the figure is 4/3 px of the 1280x720 slide,
and reveal.js draws that slide at 0.96 of a 1280x720 screen. So text of FONT points is 24.3 px there,
however large the figure, and a figure of WIDTH x HEIGHT inches fills the slide under a heading.

Colours are Okabe and Ito's palette ("Color Universal Design", 2008), told apart with every common
colour-vision deficiency. Vermillion is kept for PyTorch alone, the talk's protagonist: every other
series takes the next colour of PALETTE. Importing this module sets the figure style (each demo runs
in a process of its own, so the style never reaches another demo).
"""
import math

import matplotlib
from cycler import cycler
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter

FONT = 19            # points
WIDTH = 12.0         # inches: the slide's width
HEIGHT = 5.2         # inches: what is left of the slide under a heading

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
PYTORCH = OKABE_ITO["vermillion"]
PALETTE = [OKABE_ITO[name] for name in ("blue", "orange", "bluish green", "reddish purple", "sky blue", "yellow")]
NEUTRAL = "#6E6E6E"  # what has ended, guides, and "exactly zero"
DIVERGING = LinearSegmentedColormap.from_list("okabe_ito_diverging", [PALETTE[0], "#FFFFFF", PALETTE[1]])
SEQUENTIAL = "viridis"   # for magnitudes: uniform in lightness, readable with every colour vision

STYLE = {"axes.prop_cycle": cycler(color=PALETTE), "image.cmap": SEQUENTIAL,
         "font.size": FONT, "axes.titlesize": FONT, "axes.labelsize": FONT, "legend.fontsize": FONT,
         "xtick.labelsize": FONT, "ytick.labelsize": FONT, "figure.titlesize": FONT,
         "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 2.5, "legend.frameon": False}
matplotlib.rcParams.update(STYLE)


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
