"""Forms of the console's actions: input shape only; the services decide and explain."""

from __future__ import annotations

import re
from dataclasses import replace

from django import forms
from django.core.validators import MaxLengthValidator
from kombu.utils.json import loads

from taskops.conf import config
from taskops.masking import PlaceholderWithoutValue, placeholders_fill
from taskops.selectors.catalog import arguments_problem
from taskops.storable import value_problem
from taskops.vocabulary import SIGNALS


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=500, strip=True,
        widget=forms.TextInput(attrs={"placeholder": "why (kept in the audit log)", "size": 32}),
    )


class ConfirmNameForm(ReasonForm):
    """A dangerous action: the user types the target's name."""

    confirm = forms.CharField(max_length=255, strip=True)


class PoolForm(ReasonForm):
    direction = forms.ChoiceField(choices=[("grow", "grow"), ("shrink", "shrink")])
    n = forms.IntegerField(min_value=1, max_value=64, initial=1)

    @property
    def delta(self) -> int:
        n = self.cleaned_data["n"]
        return n if self.cleaned_data["direction"] == "grow" else -n


class AutoscaleForm(ReasonForm):
    max_processes = forms.IntegerField(min_value=1, max_value=256)
    min_processes = forms.IntegerField(min_value=0, max_value=256)


class RateLimitForm(ReasonForm):
    task_name = forms.CharField(max_length=255)
    rate = forms.CharField(max_length=32, required=False, strip=True)


class RevokeForm(ReasonForm):
    task_id = forms.CharField(max_length=255, strip=True)
    terminate = forms.BooleanField(required=False)
    signal = forms.ChoiceField(choices=[(s, s) for s in SIGNALS], initial="SIGTERM", required=False)


# A queue the console's forms may create: plain ASCII, no "/", "%", "?", "#", spaces or accents
# (such names reach the broker as they are, and every tool after it must cope with them).
QUEUE_NAME_RE = r"[A-Za-z0-9_][A-Za-z0-9_.:@-]*"


class QueueNameField(forms.CharField):
    """A queue to send to: a new name must match QUEUE_NAME_RE; `existing` (the queue the run,
    task or schedule already uses) is accepted as it is, however a sender spelled it."""

    def __init__(self, *, existing: str = "", **kwargs) -> None:
        kwargs.setdefault("max_length", 255)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)
        self.existing = existing

    def validate(self, value: str) -> None:
        super().validate(value)
        if value and value != self.existing and not re.fullmatch(QUEUE_NAME_RE, value):
            raise forms.ValidationError(
                "A new queue name may hold only letters a-z, digits and _ . - : @ (starting with a "
                "letter, digit or _).", code="invalid")


TYPED_JSON_HELP = 'Dates and UUIDs keep their type written as {"__type__": "datetime", "__value__": "..."}.'


def json_value(text: str, kind: type | None = None, label: str = ""):
    """Parse typed JSON (kombu's: datetimes, UUIDs and decimals keep their type).

    Raises ValidationError when `text` is not JSON, not a `kind` (described as `label`), or
    holds what no database stores (NaN, Infinity, 1e999, NUL, a lone surrogate).
    """
    try:
        value = loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        hint = ' (text needs quotes: "like this")' if text[:1] not in '[{"' else ""
        raise forms.ValidationError(f"Not valid JSON: {exc}{hint}") from exc
    if kind is not None and not isinstance(value, kind):
        raise forms.ValidationError(f"Must be a JSON {label}.")
    if problem := value_problem(value):
        raise forms.ValidationError(f"Not accepted: {problem}.")
    return value


def arguments_check(task_name: str, args: list, kwargs: dict) -> None:
    """Raise ValidationError unless `args` and `kwargs` fit the signature of `task_name` here.

    A task that cannot be imported here has nothing to check against and passes.
    """
    if problem := arguments_problem(task_name, args, kwargs):
        raise forms.ValidationError(problem)


def textareas_limit(form: forms.Form) -> None:
    """Give every text area of `form` (arguments, headers, descriptions) TASKOPS_TEXT_FIELD_MAX_CHARS:
    the browser's maxlength stops typing there, and the server refuses more with a field error.

    Called at the end of a form's __init__, once its fields are all there.
    """
    limit = config.text_field_max_chars
    for field in form.fields.values():
        if isinstance(field, forms.CharField) and isinstance(field.widget, forms.Textarea):
            field.max_length = limit
            field.widget.attrs["maxlength"] = str(limit)
            field.validators.append(MaxLengthValidator(limit))


def json_args_field() -> forms.CharField:
    return forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), initial="[]",
                           help_text=f"A JSON list. {TYPED_JSON_HELP}")


def json_kwargs_field() -> forms.CharField:
    return forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), initial="{}",
                           help_text="A JSON object.")


class JsonCallMixin:
    """Cleans the `args` (a JSON list) and `kwargs` (a JSON object) fields of a form that has them."""

    def clean_args(self):
        return json_value(self.cleaned_data.get("args", ""), list, "list")

    def clean_kwargs(self):
        return json_value(self.cleaned_data.get("kwargs", ""), dict, "object")


class RetryAgainForm(ReasonForm):
    """A retry of one run; of a run retried already only with "retry again" ticked, naming the
    latest retry the person was shown (`again_after`)."""

    again = forms.BooleanField(required=False, label="Retry again",
                               help_text="This run was retried already: send another retry anyway.")
    again_after = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    @property
    def again_after_value(self) -> str:
        """The retry the person saw and chose to retry after ("" unless "retry again" is ticked)."""
        data = getattr(self, "cleaned_data", {})
        return data.get("again_after", "") if data.get("again") else ""


class RetryEditForm(JsonCallMixin, RetryAgainForm):
    """A run sent again with edited arguments or routing; checked before anything is sent.

    The form shows hidden values as the •••• placeholder; one left in place stands for the
    captured call's value at the same place (masking.placeholders_fill), so a user can fix one
    argument without seeing the others. `retried` (the run's latest retry, if any) shows
    "retry again"; the form has none otherwise.
    """

    args = json_args_field()
    kwargs = json_kwargs_field()
    queue = QueueNameField()
    priority = forms.IntegerField(required=False, help_text="Empty: none (the broker's range applies).")

    def __init__(self, *args, task_name: str, captured_args: list | None = None,
                 captured_kwargs: dict | None = None, retried=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_name = task_name
        self.fields["queue"].existing = self.initial.get("queue") or ""  # the run's own queue
        textareas_limit(self)
        self.captured = {"args": captured_args or [], "kwargs": captured_kwargs or {}}
        self.order_fields(["reason", "args", "kwargs", "queue", "priority"])  # "retry again" last
        if retried is None:
            del self.fields["again"], self.fields["again_after"]
        else:
            self.fields["again_after"].initial = retried.task_id

    def _filled(self, name: str, value):
        try:
            return placeholders_fill(value, self.captured[name], name)
        except PlaceholderWithoutValue as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_args(self):
        return self._filled("args", super().clean_args())

    def clean_kwargs(self):
        return self._filled("kwargs", super().clean_kwargs())

    def clean(self):
        data = super().clean()
        if "args" in data and "kwargs" in data:
            arguments_check(self.task_name, data["args"], data["kwargs"])
        return data

    def call(self, base):
        """The captured call `base` with this form's arguments and routing."""
        queue = self.cleaned_data["queue"]
        return replace(
            base,
            args=self.cleaned_data["args"],
            kwargs=self.cleaned_data["kwargs"],
            routing_key=queue,
            exchange=base.exchange if queue == base.routing_key else "",
            priority=self.cleaned_data["priority"],
        )


PARAMETER_PREFIX = "arg_"
MAX_DELAY_SECONDS = 366 * 24 * 3600
MAX_TIME_LIMIT_SECONDS = 7 * 24 * 3600


def _parameter_field(parameter) -> forms.CharField:
    """A JSON field for one parameter of the task's signature (a selectors.catalog.TaskParameter)."""
    if parameter.kind == "VAR_POSITIONAL":
        help_text = "More positional arguments: a JSON list (empty: none)."
    elif parameter.kind == "VAR_KEYWORD":
        help_text = "More keyword arguments: a JSON object (empty: none)."
    elif parameter.required:
        help_text = "Required. A JSON value."
    elif parameter.default_json:
        help_text = "A JSON value (empty: the task's default)."
    else:
        help_text = f"A JSON value (empty: the task's default, {parameter.default_text})."
    if parameter.annotation:
        help_text = f"{parameter.annotation}. {help_text}"
    return forms.CharField(
        label=parameter.name, required=parameter.required, initial=parameter.default_json,
        strip=True, help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 1, "cols": 60, "class": "taskops-json"}),
    )


class TaskRunForm(JsonCallMixin, ReasonForm):
    """A new run of a task: its arguments and how to send it; checked before anything is sent.

    With `parameters` (the task can be imported here) each parameter gets a JSON field;
    without, the arguments are a JSON list and a JSON object.
    """

    queue = QueueNameField()
    countdown = forms.FloatField(required=False, min_value=0, max_value=MAX_DELAY_SECONDS,
                                 help_text="Seconds from now (or give an ETA).")
    eta = forms.DateTimeField(required=False, label="ETA",
                              help_text="Not before this time (or a countdown).",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}))
    priority = forms.IntegerField(required=False, help_text="Empty: none (the broker's range applies).")
    expires = forms.FloatField(required=False, min_value=0.001, max_value=MAX_DELAY_SECONDS,
                               help_text="Seconds: discarded if it has not started by then.")
    time_limit = forms.FloatField(required=False, min_value=0.001, max_value=MAX_TIME_LIMIT_SECONDS,
                                  help_text="Hard limit in seconds: the process is killed.")
    soft_time_limit = forms.FloatField(required=False, min_value=0.001,
                                       max_value=MAX_TIME_LIMIT_SECONDS,
                                       help_text="Seconds: the task gets SoftTimeLimitExceeded.")

    def __init__(self, *args, task_name: str, parameters, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_name = task_name
        self.parameters = parameters
        self.fields["queue"].existing = self.initial.get("queue") or ""  # the task's routing
        if parameters is None:
            self.fields["args"] = json_args_field()
            self.fields["kwargs"] = json_kwargs_field()
            argument_fields = ["args", "kwargs"]
        else:
            argument_fields = [PARAMETER_PREFIX + p.name for p in parameters]
            for parameter, name in zip(parameters, argument_fields):
                self.fields[name] = _parameter_field(parameter)
        self.argument_names = argument_fields
        textareas_limit(self)
        self.order_fields([*argument_fields, "queue", "countdown", "eta", "priority", "expires",
                           "time_limit", "soft_time_limit", "reason"])

    @property
    def fieldsets(self) -> list[tuple[str, list]]:
        """("Arguments", bound fields), ("Sending", bound fields): the template shows them apart."""
        return [
            ("Arguments", [self[name] for name in self.argument_names]),
            ("Sending", [field for field in self if field.name not in self.argument_names]),
        ]

    def send_options(self) -> dict:
        """The cleaned queue, timing, priority, expiry and limits, as task_send takes them."""
        return {name: self.cleaned_data.get(name) for name in (
            "queue", "countdown", "eta", "priority", "expires", "time_limit", "soft_time_limit")}

    def clean(self):
        data = super().clean()
        if data.get("countdown") is not None and data.get("eta") is not None:
            self.add_error(None, "Give a countdown or an ETA, not both.")
        soft, hard = data.get("soft_time_limit"), data.get("time_limit")
        if soft is not None and hard is not None and soft >= hard:
            self.add_error("soft_time_limit", "The soft time limit must be below the hard one.")
        if self.parameters is not None:
            self._parameters_clean(data)
        if not self.errors and "args" in data and "kwargs" in data:
            arguments_check(self.task_name, data["args"], data["kwargs"])
        return data

    def _parameters_clean(self, data: dict) -> None:
        """The parameter fields -> data["args"] and data["kwargs"], as the signature takes them."""
        known = {PARAMETER_PREFIX + p.name for p in self.parameters}
        unknown = sorted(k[len(PARAMETER_PREFIX):] for k in self.data
                         if k.startswith(PARAMETER_PREFIX) and k not in known)
        if unknown:
            self.add_error(None, f"{self.task_name} takes no argument {', '.join(unknown)} (the page "
                                 "may be older than the task's code: reload it).")
        values = {}
        for parameter in self.parameters:
            name = PARAMETER_PREFIX + parameter.name
            kind = {"VAR_POSITIONAL": list, "VAR_KEYWORD": dict}.get(parameter.kind)
            if data.get(name):
                try:
                    values[parameter.name] = json_value(
                        data[name], kind, "list" if kind is list else "object")
                except forms.ValidationError as error:
                    self.add_error(name, error)
        if not self.errors:
            try:
                data["args"], data["kwargs"] = _call_arguments(self.parameters, values)
            except forms.ValidationError as error:
                self.add_error(None, error)


def _call_arguments(parameters, values: dict) -> tuple[list, dict]:
    """Place each given value as the signature takes it: by position where it must, else by name.

    A parameter left empty before one that goes by position gets its default (an error when
    its default cannot be written as JSON), so no value lands in the wrong parameter.
    """
    extra = values.get(next((p.name for p in parameters if p.kind == "VAR_POSITIONAL"), ""), [])
    args: list = []
    kwargs: dict = {}
    skipped = []
    for parameter in parameters:
        given = parameter.name in values
        by_position = parameter.kind == "POSITIONAL_ONLY" or (
            parameter.kind == "POSITIONAL_OR_KEYWORD" and extra)
        if parameter.kind == "VAR_POSITIONAL":
            args.extend([*_defaults(skipped), *extra] if extra else [])
        elif parameter.kind == "VAR_KEYWORD":
            kwargs.update(values.get(parameter.name, {}))
        elif not by_position:
            kwargs.update({parameter.name: values[parameter.name]} if given else {})
        elif given:
            args.extend([*_defaults(skipped), values[parameter.name]])
            skipped = []
        else:
            skipped.append(parameter)
    return args, kwargs


def _defaults(parameters) -> list:
    """The defaults of parameters left empty before a positional value."""
    missing = [p.name for p in parameters if not p.default_json]
    if missing:
        raise forms.ValidationError(
            f"Give {', '.join(missing)} a value: the arguments after it go by position.")
    return [json_value(p.default_json) for p in parameters]


class DecisionForm(ReasonForm):
    """Approve or reject a dangerous action someone else asked for."""

    decision = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])


class RetryMatchingForm(ReasonForm):
    """Retry every run matching a list's filters: what to include, and how many the person was shown."""

    include_succeeded = forms.BooleanField(
        required=False, label="Include runs that succeeded",
        help_text="Left out unless ticked: retrying them does their work again.")
    include_retried = forms.BooleanField(
        required=False, label="Include runs already retried",
        help_text="Left out unless ticked: each would be sent another time.")
    expected = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
