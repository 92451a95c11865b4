"""A matplotlib figure as a standalone SVG document (shown through <img>, so it can never run script)."""
from __future__ import annotations

import io
from html import escape


def svg(figure, salt: str, alt: str) -> str:
    """The same figure gives the same bytes (``salt`` fixes the ids, no date); text stays text."""
    import matplotlib
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):].replace("<svg ", f'<svg role="img" aria-label="{escape(alt)}" ', 1)
