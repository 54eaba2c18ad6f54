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
