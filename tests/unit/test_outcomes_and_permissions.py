"""Pure decisions: an outcome from a command's replies, and can()/action_refusal() for a person."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from taskops.control import CommandResult
from taskops.permissions import ACTION_PERMISSIONS, MUTATING_ACTIONS, action_refusal, can
from taskops.services.base import outcome_from_replies


def outcome(replies=None, errors=None, missing=()):
    return outcome_from_replies(CommandResult("cmd", replies or {}, errors or {}, tuple(missing)),
                                "Pool change", none_answered="Nobody answered.")


def test_every_worker_answering_is_ok_and_named():
    result = outcome({"b@h": "ok", "a@h": "ok"})

    assert (result.outcome, result.message) == ("ok", "Pool change: a@h, b@h answered.")
    assert result.detail == {"replies": {"b@h": "ok", "a@h": "ok"}, "errors": {}, "missing": []}


def test_no_reply_at_all_is_not_success():
    result = outcome(missing=["a@h"])

    assert (result.outcome, result.message) == ("no_reply", "Nobody answered.")
    assert result.detail["missing"] == ["a@h"]


def test_some_silent_is_partial_and_names_them():
    result = outcome({"a@h": "ok"}, missing=["b@h", "c@h"])

    assert result.outcome == "partial"
    assert result.message == "Pool change: a@h answered. No reply from b@h, c@h."


def test_errors_only_is_failed_and_mixed_is_partial():
    failed = outcome(errors={"b@h": "unknown task", "a@h": "nope"})
    mixed = outcome({"a@h": "ok"}, errors={"b@h": "unknown task"})

    assert failed.outcome == "failed"
    assert failed.message == "Refused by a@h: nope; b@h: unknown task."
    assert mixed.outcome == "partial"
    assert mixed.message == "Pool change: a@h answered. Refused by b@h: unknown task."


@dataclass
class Person:
    """What can() reads of a user: active, staff, and the permissions it holds."""

    is_active: bool = True
    is_staff: bool = True
    permissions: set[str] = field(default_factory=set)

    def has_perm(self, permission: str) -> bool:
        return permission in self.permissions


EVERYTHING = set(ACTION_PERMISSIONS.values())


@pytest.mark.parametrize("action", sorted(ACTION_PERMISSIONS))
def test_can_follows_the_actions_permission(action):
    assert can(Person(permissions={ACTION_PERMISSIONS[action]}), action)
    assert not can(Person(permissions=EVERYTHING - {ACTION_PERMISSIONS[action]}), action)


def test_only_active_staff_can_and_unknown_actions_are_refused_to_everyone():
    assert not can(Person(is_active=False, permissions=EVERYTHING), "queue.view")
    assert not can(Person(is_staff=False, permissions=EVERYTHING), "queue.view")
    assert not can(Person(permissions=EVERYTHING), "queue.explode")
    assert not can(Person(permissions=EVERYTHING), "")


def test_read_only_mode_refuses_every_mutating_action_and_no_reading_one(settings):
    settings.TASKOPS_READ_ONLY = True
    boss = Person(permissions=EVERYTHING)

    assert {a for a in ACTION_PERMISSIONS if not can(boss, a)} == set(MUTATING_ACTIONS)
    assert MUTATING_ACTIONS <= set(ACTION_PERMISSIONS)  # no mutating action without a permission


def test_a_refusal_says_why_in_words_for_the_person(settings):
    assert action_refusal(Person(), "task.retry") == ("You may not task retry: your role does not "
                                                      "allow it.")
    assert action_refusal(Person(), "worker.pool_grow").startswith("You may not worker pool grow")
    settings.TASKOPS_READ_ONLY = True
    assert "read-only mode" in action_refusal(Person(permissions=EVERYTHING), "queue.purge")
    assert action_refusal(Person(), "queue.view").startswith("You may not queue view")
