"""The console's forms: only plain new queue names (the odd one already in use stays usable), and text areas within their limit."""

import pytest

from taskops.forms import RetryEditForm, TaskRunForm

ODD = ["a/b", "a%41", "a?b", "a#b", "a b", "é", " lead", "-lead", ".", "..", "a\nb"]
TASK = "demo.tasks.unknown_here"  # not importable: raw args/kwargs, nothing to bind


def _run_form(queue: str, *, initial: str = "default") -> TaskRunForm:
    return TaskRunForm({"queue": queue, "args": "[]", "kwargs": "{}"}, task_name=TASK,
                       parameters=None, initial={"queue": initial})


def _retry_form(queue: str, *, initial: str = "default") -> RetryEditForm:
    return RetryEditForm({"queue": queue, "args": "[]", "kwargs": "{}"}, task_name=TASK,
                         initial={"queue": initial})


@pytest.mark.parametrize("make", [_run_form, _retry_form])
@pytest.mark.parametrize("queue", ODD)
def test_a_new_queue_name_with_odd_characters_is_a_form_error(make, queue):
    form = make(queue)
    assert not form.is_valid()
    assert "letters a-z, digits" in " ".join(form.errors["queue"])


@pytest.mark.parametrize("make", [_run_form, _retry_form])
@pytest.mark.parametrize("queue", ["default", "reports", "celery@w1.dq", "tenant:42_hi-prio", "Q9"])
def test_plain_queue_names_are_accepted(make, queue):
    assert make(queue).is_valid(), make(queue).errors


@pytest.mark.parametrize("make", [_run_form, _retry_form])
def test_the_odd_queue_the_run_or_task_already_uses_stays_usable(make):
    odd = "legacy/queue ü"
    assert make(odd, initial=odd).is_valid()
    assert not make(odd + "2", initial=odd).is_valid()


@pytest.mark.django_db
def test_a_schedule_keeps_its_odd_queue_but_gets_no_new_one():
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from taskops.schedule_forms import PeriodicTaskForm

    task = PeriodicTask.objects.create(
        name="odd", task=TASK, queue="legacy/queue",
        interval=IntervalSchedule.objects.create(every=5, period="minutes"))
    assert PeriodicTaskForm(instance=task).fields["queue"].existing == "legacy/queue"
    assert PeriodicTaskForm().fields["queue"].existing == ""
    errors = PeriodicTaskForm({"queue": "new/queue"}).errors
    assert "letters a-z, digits" in " ".join(errors["queue"])
    assert "queue" not in PeriodicTaskForm({"queue": "legacy/queue"}, instance=task).errors


@pytest.mark.parametrize("make", [_run_form, _retry_form])
def test_json_text_areas_carry_the_limit_and_refuse_more(make, settings):
    settings.TASKOPS_TEXT_FIELD_MAX_CHARS = 10
    form = make("default")
    assert {form.fields[name].widget.attrs["maxlength"] for name in ("args", "kwargs")} == {"10"}
    long = make("default")
    long.data = {**long.data, "args": '["' + "x" * 20 + '"]'}
    assert not long.is_valid()
    assert long.errors["args"] == ["Ensure this value has at most 10 characters (it has 24)."]
