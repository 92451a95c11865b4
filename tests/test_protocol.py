"""The builder and the demo server speak typed messages: every one survives a round trip, and a message
of the wrong shape is refused with the field named."""
import json

import pytest

from deck.protocol import (OUTPUT_CAP_BYTES, Problem, ProtocolError, Ready, Reply, Request, ServerConfig, Stopped,
                           decode, encode, failed)
from deck.result import Output, Provenance, Result, Table, Timing

RESULT = Result(values={"total": 45, "name": "x", "ratio": 0.5, "flags": [True, None]}, measured={"speedup": 1.5},
                tables=[Table(["a"], [["1"]], "caption")], timings={"step": Timing(0.1, 0.01, 5, "cpu")},
                output=Output("printed\n", 8), reads={"demos/a.py": "ab" * 32, "demos/data/": "cd" * 32},
                provenance=Provenance("cpu", "cpu (x, 2 cores)", "2.13.0", "3.11.7", "2026-12-01T00:00:00+00:00", 0.2))


@pytest.mark.parametrize("message", [
    Ready(device="cuda"),
    Stopped(reason="[tool.deck] preload: cannot import pandas: No module named 'pandas'"),
    ServerConfig(device="cpu", root="/talk", demos="/talk/demos", scratch="/tmp/demos-x", protected=("/talk/slides", "/out"),
                 preload=("matplotlib.pyplot",)),
    Request(demo="basics.numpy_vs_torch", args={"n": 3}, size="small", timeout_s=12.5),
    Reply(result=RESULT),
    failed(Problem.TIMED_OUT, "8 s", output="the end of what it printed"),
    failed(Problem.RAISED, "ValueError: broke", "Traceback (most recent call last): ..."),
])
def test_every_message_survives_a_round_trip(message):
    line = encode(message)
    assert "\n" not in line
    assert decode(line) == message
    assert decode(line.encode()) == message   # as read from a pipe


@pytest.mark.parametrize("problem", list(Problem))
def test_every_problem_kind_travels_as_itself(problem):
    reply = decode(encode(failed(problem, "detail")))
    assert reply.problem is problem and not reply.ok and reply.result is None


def test_the_output_cap_is_the_config_default():
    assert ServerConfig("cpu", "/t", "/t/demos", "/tmp/demos-x").output_cap == OUTPUT_CAP_BYTES
    assert decode(encode(ServerConfig("cpu", "/t", "/t/demos", "/tmp/demos-x"))).output_cap == OUTPUT_CAP_BYTES


def tampered(message, **changes) -> str:
    data = json.loads(encode(message))
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize("line, error", [
    ("not json", "not a JSON message"),
    ("[1, 2]", "not a message: expected an object with a type"),
    ('{"type": "shutdown"}', "type: unknown message type 'shutdown'"),
    (tampered(Request("a.b"), timeout_s="soon"), "request.timeout_s: expected int or float, got str"),
    (tampered(Request("a.b"), timeout_s=True), "request.timeout_s: expected int or float, got bool"),
    (tampered(Request("a.b"), demo="nodot"), "request.demo: expected module.function"),
    (tampered(Request("a.b"), args=KeyError), "request: missing args"),
    (tampered(Request("a.b"), extra=1), "request: unknown extra"),
    (tampered(Stopped("why"), reason=3), "stopped.reason: expected str, got int"),
    (tampered(failed(Problem.CRASHED), problem="exploded"), "reply.problem: unknown problem 'exploded'"),
    (tampered(Reply(result=RESULT), problem="crashed"), "reply: expected either a result or a problem"),
    (tampered(failed(Problem.CRASHED), problem=None), "reply: expected either a result or a problem"),
    (tampered(Reply(result=RESULT), result={"values": {}}), "reply.result: missing"),
    (tampered(ServerConfig("cpu", "/t", "/t/demos", "/tmp/demos-x"), protected=[1]), "config.protected: expected a list of folders"),
    (tampered(ServerConfig("cpu", "/t", "/t/demos", "/tmp/demos-x"), preload="torch"), "config.preload: expected list, got str"),
    (tampered(ServerConfig("cpu", "/t", "/t/demos", "/tmp/demos-x"), preload=[None]), "config.preload: expected a list of module names"),
    ("[" * 100_000 + "]" * 100_000, "not a JSON message"),
])
def test_a_message_of_the_wrong_shape_names_the_field(line, error):
    with pytest.raises(ProtocolError) as caught:
        decode(line)
    assert error in str(caught.value)


def test_a_reply_is_ok_exactly_when_it_has_no_problem():
    assert Reply(result=RESULT).ok
    assert not failed(Problem.SERVER_GONE, "no reply").ok


def test_encoding_refuses_what_json_cannot_hold():
    with pytest.raises(ValueError):
        encode(Reply(result=Result(values={"x": float("nan")})))
