"""Part 4, "try doing this in TensorFlow" (demos/tensorflow_wall.py): a Python random depth under
tf.function is frozen at trace time, retraces as an argument, and varies once it is in the graph."""
import pytest

from demos._main import demos_in

pytestmark = [pytest.mark.slow,  # imports TensorFlow and traces graphs
              pytest.mark.usefixtures("demo_tmpdir")]


@pytest.fixture(scope="module")
def tf():
    """TensorFlow, an optional extra (pip install ".[tensorflow]"): imported by the first test that needs
    it, not when the tests are collected (it takes seconds, and the quick tier runs none of these)."""
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tensorflow_wall(tf):
    from demos import tensorflow_wall
    return tensorflow_wall


@pytest.fixture(scope="module")
def result(tensorflow_wall):
    return tensorflow_wall.tf_random_depth("cpu", "small")


def test_is_the_only_demo(tensorflow_wall):
    assert set(demos_in(tensorflow_wall)) == {"tf_random_depth"}


def test_a_python_depth_is_drawn_once_while_tracing(result, tf):
    values = result.values
    assert values["tensorflow"] == tf.__version__
    assert values["python_traces"] == 1
    assert values["python_answers"] == 1


def test_a_python_argument_retraces_for_every_new_value(result):
    values = result.values
    assert 1 < values["argument_traces"] <= values["max_depth"]
    assert values["argument_answers"] == values["argument_traces"]


def test_the_depth_in_the_graph_traces_once_and_varies(result):
    values = result.values
    assert values["graph_traces"] == 1
    assert values["graph_answers"] > 1


def test_calls_that_traced_are_timed_apart_from_those_that_did_not(result):
    timings, values = result.timings, result.values
    assert timings["argument_tracing"].repeats == values["argument_traces"]
    assert timings["argument_plain"].repeats == values["calls"] - values["argument_traces"]
    assert timings["python_tracing"].repeats == 1 and timings["python_tracing"].median_s > 0
    assert len(result.tables[0].rows) == 3


def test_the_shown_function_really_freezes_its_depth(tensorflow_wall, tf):
    """Independently of the demo: the listing's function, with two depths forced by hand."""
    import random
    layers = [tf.eye(4) for _ in range(3)]
    forward = tensorflow_wall.python_depth(layers)
    x = tf.ones((1, 4))
    random.seed(1)
    first = forward(x).numpy()
    for seed in range(5):  # whatever Python's random would draw now, the graph has its constant
        random.seed(seed)
        assert (forward(x).numpy() == first).all()
    assert forward.experimental_get_tracing_count() == 1


def test_without_tensorflow_it_says_so_and_measures_nothing(tensorflow_wall, monkeypatch, capsys):
    monkeypatch.setattr(tensorflow_wall, "tf", None)
    result = tensorflow_wall.tf_random_depth("cpu", "small")
    assert result.values == {"tensorflow": ""}
    assert not result.timings and not result.tables
    assert "not installed" in capsys.readouterr().out
