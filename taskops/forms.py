"""Forms of the console's actions: input shape only; the services decide and explain."""

from __future__ import annotations

from django import forms

from taskops.services import SIGNALS


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


QUEUE_NAME_RE = r"^[\w.\-:@/]+$"


class RetryEditForm(ReasonForm):
    """A run sent again with edited arguments or routing; checked before anything is sent."""

    args = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), initial="[]",
                           help_text="A JSON list. Dates and UUIDs keep their type written as "
                                     '{"__type__": "datetime", "__value__": "..."}.')
    kwargs = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), initial="{}",
                             help_text="A JSON object.")
    queue = forms.RegexField(regex=QUEUE_NAME_RE, max_length=255)
    priority = forms.IntegerField(min_value=0, max_value=255, required=False)

    def __init__(self, *args, task_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_name = task_name

    def _json(self, field: str, kind: type, label: str):
        from kombu.utils.json import loads

        text = self.cleaned_data.get(field, "")
        try:
            value = loads(text)
        except (ValueError, TypeError) as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, kind):
            raise forms.ValidationError(f"Must be a JSON {label}.")
        return value

    def clean_args(self):
        return self._json("args", list, "list")

    def clean_kwargs(self):
        return self._json("kwargs", dict, "object")

    def clean(self):
        import inspect

        from taskops.conf import celery_app

        data = super().clean()
        task = celery_app().tasks.get(self.task_name)
        if task is not None and "args" in data and "kwargs" in data:
            try:
                signature = inspect.signature(task.run)
                signature.bind(*data["args"], **data["kwargs"])
            except TypeError as exc:
                raise forms.ValidationError(
                    f"The arguments do not fit {self.task_name}{signature}: {exc}."
                ) from exc
            except ValueError:
                pass  # no signature to check against (a builtin or C function)
        return data

    def call(self, base):
        """The captured call `base` with this form's arguments and routing."""
        from dataclasses import replace

        queue = self.cleaned_data["queue"]
        return replace(
            base,
            args=self.cleaned_data["args"],
            kwargs=self.cleaned_data["kwargs"],
            routing_key=queue,
            exchange=base.exchange if queue == base.routing_key else "",
            priority=self.cleaned_data["priority"],
        )
