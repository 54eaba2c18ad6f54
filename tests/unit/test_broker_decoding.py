"""The broker reader's decoding of kombu's Redis layout and messages, without a broker."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from taskops import broker
from taskops.broker import WaitingMessage

SEP = "\x06\x16"


def channel(prefix: str = "", steps=(9, 0, 6, 3)) -> SimpleNamespace:
    """What the reader takes from a kombu Redis channel (its layout attributes only)."""
    return SimpleNamespace(global_keyprefix=prefix, sep=SEP, priority_steps=list(steps),
                           unacked_key="unacked", unacked_index_key="unacked_index",
                           unacked_mutex_key="unacked_mutex", keyprefix_queue="_kombu.binding.%s")


def test_a_queue_lives_in_one_list_per_priority_step_in_the_order_workers_take_them():
    layout = broker._redis_layout(channel())

    assert layout.keys("reports") == [(0, "reports"), (3, f"reports{SEP}3"), (6, f"reports{SEP}6"),
                                      (9, f"reports{SEP}9")]
    assert (layout.unacked, layout.bindings) == ("unacked", "_kombu.binding.")


def test_a_global_key_prefix_applies_to_every_key():
    layout = broker._redis_layout(channel(prefix="tenant1:", steps=(0, 5)))

    assert layout.keys("q") == [(0, "tenant1:q"), (5, f"tenant1:q{SEP}5")]
    assert (layout.unacked, layout.bindings) == ("tenant1:unacked", "tenant1:_kombu.binding.")


@pytest.mark.parametrize("name", ["unacked", "unacked_index", "unacked_mutex", "_kombu.binding.x",
                                  f"q{SEP}3", "w1@h.celery.pidbox", "celeryev.123"])
def test_kombus_own_keys_are_no_queues(name):
    assert broker._redis_own_key(channel(), name)


@pytest.mark.parametrize("name", ["default", "reports", "unacked-reports", "my.queue"])
def test_ordinary_names_are_queues(name):
    assert not broker._redis_own_key(channel(), name)


def _entry(*, headers: dict | None = None, body=None, encoding: str | None = "base64",
           priority=None) -> str:
    raw = json.dumps(body if body is not None else [["a", 1], {"k": "v"}, {}])
    return json.dumps({
        "body": base64.b64encode(raw.encode()).decode() if encoding == "base64" else raw,
        "headers": headers if headers is not None else {},
        "properties": {"body_encoding": encoding, "correlation_id": "corr-1",
                       **({"priority": priority} if priority is not None else {})},
    })


def test_a_waiting_message_is_read_from_celerys_headers():
    raw = _entry(headers={"id": "t1", "task": "demo.tasks.generate_report", "argsrepr": "('sales',)",
                          "kwargsrepr": "{'rows': 2}", "eta": "2026-01-01T00:00:00+00:00",
                          "expires": None, "retries": 2, "root_id": "r1", "parent_id": "p1"},
                 priority=6)

    assert broker._waiting_message(1, raw, 6) == WaitingMessage(
        position=1, id="t1", task="demo.tasks.generate_report", args="('sales',)",
        kwargs="{'rows': 2}", eta="2026-01-01T00:00:00+00:00", expires="", retries=2, priority=6,
        root_id="r1", parent_id="p1")


def test_without_reprs_the_body_is_decoded_and_the_step_stands_for_a_missing_priority():
    message = broker._waiting_message(3, _entry(headers={"task": "t"}), 9)

    assert (message.args, message.kwargs, message.priority) == ("['a', 1]", "{'k': 'v'}", 9)
    assert message.id == "corr-1"  # no id header: the correlation id


def test_a_masked_repr_wins_over_the_body():
    raw = _entry(headers={"argsrepr": "('<card number>',)", "kwargsrepr": "{}"},
                 body=[["4111 1111 1111 1111"], {}, {}])

    message = broker._waiting_message(1, raw, 0)

    assert message.args == "('<card number>',)" and "4111" not in repr(message)


def test_plain_json_bodies_and_long_reprs_are_read_and_cut():
    raw = _entry(headers={"argsrepr": "x" * 5000}, body=[[], {"k": 1}, {}], encoding=None)

    message = broker._waiting_message(1, raw, 0)

    assert len(message.args) == 1000 and message.kwargs == "{'k': 1}"


@pytest.mark.parametrize("raw", [
    b"not json",
    json.dumps({"body": "%%%", "properties": {"body_encoding": "base64"}}),
    json.dumps({"body": json.dumps([1, 2])}),
    "[]",
    '"a string"',
    json.dumps({"headers": "not an object", "properties": [1]}),
    json.dumps({"headers": {"retries": "many"}}),
])
def test_a_broken_message_is_shown_as_what_can_be_read_never_an_error(raw):
    message = broker._waiting_message(1, raw, 3)

    assert (message.args, message.kwargs, message.priority) == ("None", "None", 3)


def test_decode_body_gives_args_and_kwargs_or_nothing():
    assert broker._decode_body({"body": json.dumps([[1], {"a": 2}, {}])}) == ([1], {"a": 2})
    assert broker._decode_body({"body": base64.b64encode(b'[[], {}, {}]').decode(),
                                "properties": {"body_encoding": "base64"}}) == ([], {})
    assert broker._decode_body({"body": "[1, 2]"}) == (None, None)  # not [args, kwargs, embed]
    assert broker._decode_body({}) == (None, None)
