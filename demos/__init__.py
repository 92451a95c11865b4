"""The talk's demos: one module per part of the talk, each demo a plain function.

A demo is a top-level function whose first two parameters are ``device`` and
``size``: ``def name(device: str, size: str = "full") -> Result``.  ``device`` is
a torch device string ("cpu", "cuda", "mps"); ``size`` is "full" for the talk and
"small" for tests.  What it prints is captured as its text output; what it
returns (a :class:`demos._results.Result`) carries its values, tables, figures
and timings.  Modules whose name starts with ``_`` hold what the demos share.
"""
