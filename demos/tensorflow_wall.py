"""Part 4 of the talk, "try doing this in TensorFlow": a depth drawn by Python, under tf.function.

``tf.function`` makes a graph by running the Python function once (tracing) and
then runs the graph.  A Python random number drawn while tracing is a constant
of that graph, so every call uses the same depth.  Passing the depth in as a
Python argument traces a new graph for every new value.  The TensorFlow way
puts the random number and the loop into the graph: ``tf.random`` and a
``tf.range`` loop, which AutoGraph turns into a ``tf.while_loop``.

TensorFlow is an optional extra (``pip install ".[tensorflow]"``, which ``make``
installs); where it is missing, the demo says so and measures nothing.  It runs
on the CPU whatever device the rest of the talk uses (``tensorflow-cpu``).
"""
from __future__ import annotations

import os
import random

from deck.result import Result, Table
from demos._timing import cell, from_samples, once

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
try:
    import tensorflow as tf
except ImportError:  # the optional extra is not installed
    tf = None

SIZES = {"small": dict(width=16, max_depth=3, calls=20),
         "full": dict(width=64, max_depth=6, calls=60)}


def residual_stack(h, layers):
    for w in layers:
        h = h + tf.nn.relu(h @ w)
    return h


def python_depth(layers):
    @tf.function
    def forward(h):
        depth = random.randint(1, len(layers))  # Python: runs once, while tracing
        return residual_stack(h, layers[:depth])
    return forward


def depth_as_argument(layers):
    @tf.function
    def forward(h, depth):  # a Python int: one graph per value
        return residual_stack(h, layers[:depth])
    return forward


def depth_in_the_graph(stacked):
    @tf.function
    def forward(h):
        depth = tf.random.uniform((), 1, stacked.shape[0] + 1, tf.int32)
        for i in tf.range(depth):  # AutoGraph: a tf.while_loop
            h = h + tf.nn.relu(h @ stacked[i])
        return h
    return forward


def answers(outputs) -> int:
    """How many different answers the same input got (one per depth used)."""
    return len({tuple(out.numpy().round(5).ravel()) for out in outputs})


def traced(forward, call, calls: int) -> dict:
    """Call a tf.function ``calls`` times: its traces, its answers, and how long the calls
    that traced took beside those that did not."""
    outputs, tracing, plain = [], [], []
    for _ in range(calls):
        traces = forward.experimental_get_tracing_count()
        out, took = once(call)
        outputs.append(out)
        (tracing if forward.experimental_get_tracing_count() > traces else plain).append(took.median_s)
    return {"traces": forward.experimental_get_tracing_count(), "answers": answers(outputs),
            "tracing": from_samples(tracing), "plain": from_samples(plain)}


def the_three_ways(width: int, max_depth: int, calls: int) -> dict:
    """The same random-depth residual stack, written three ways under tf.function."""
    stacked = tf.Variable(tf.random.normal((max_depth, width, width)) / width ** 0.5)
    layers = [stacked[i] for i in range(max_depth)]
    x = tf.random.normal((8, width))
    python_depth(layers)(x)  # the first tf.function of a process pays a one-off start-up: untimed
    frozen, argument, in_graph = (python_depth(layers), depth_as_argument(layers),
                                  depth_in_the_graph(stacked))
    return {"python": traced(frozen, lambda: frozen(x), calls),
            "argument": traced(argument,
                               lambda: argument(x, random.randint(1, max_depth)), calls),
            "graph": traced(in_graph, lambda: in_graph(x), calls)}


ROWS = {"python": "Python random depth inside", "argument": "depth as a Python argument",
        "graph": "tf.random depth, tf.range loop"}


def tf_random_depth(device: str, size: str = "full") -> Result:
    """A random depth under tf.function: frozen at trace time, retraced, or put in the graph."""
    if tf is None:
        print("TensorFlow is not installed here: nothing to measure")
        return Result(values={"tensorflow": ""})
    cfg = SIZES[size]
    random.seed(0)
    tf.random.set_seed(0)
    ways = the_three_ways(**cfg)
    for name, way in ways.items():
        print(f"{ROWS[name]}: {way['traces']} trace(s), {way['answers']} different "
              f"answer(s) in {cfg['calls']} calls")
    table = Table(["tf.function with…", "traces", "different answers", "calls that traced",
                   "calls that did not"],
                  [[ROWS[n], w["traces"], w["answers"], cell(w["tracing"]), cell(w["plain"])]
                   for n, w in ways.items()],
                  caption=f"{cfg['calls']} calls on one input, depth 1 to {cfg['max_depth']}, "
                          f"TensorFlow {tf.__version__} on the CPU")
    values = {"tensorflow": tf.__version__, "calls": cfg["calls"], "max_depth": cfg["max_depth"]}
    for name, way in ways.items():
        values.update({f"{name}_traces": way["traces"], f"{name}_answers": way["answers"]})
    return Result(values=values, tables=[table],
                  timings={f"{name}_{when}": way[when] for name, way in ways.items()
                           for when in ("tracing", "plain")})


if __name__ == "__main__":
    from demos._main import main
    main(__name__)
