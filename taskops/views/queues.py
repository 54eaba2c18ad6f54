"""Queue pages: the list, one queue (depth, history, peek, in flight) and its pause, resume, purge and restore."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from taskops.conf import config
from taskops import selectors, services
from taskops.forms import ConfirmNameForm, ReasonForm
from taskops.views.common import render_page, require, run_action


def queue_list(request: HttpRequest) -> HttpResponse:
    require(request, "queue.view")
    reading = selectors.cluster_reading()
    return render_page(request, "admin/taskops/queue_list.html", "Queues", {"reading": reading})


def queue_detail(request: HttpRequest, name: str) -> HttpResponse:
    require(request, "queue.view")
    detail = selectors.queue_detail(name)
    if detail.row is None and detail.pause is None and detail.reading.broker_ok:
        raise Http404(f"No queue named {name!r} is configured, consumed or seen in the broker.")
    return render_page(
        request, "admin/taskops/queue_detail.html", f"Queue {name}",
        {"name": name, "detail": detail, "reading": detail.reading,
         "sample_interval": config.sample_interval},
    )


def _detail_url(name: str) -> str:
    return reverse("admin:taskops_queue_detail", args=[name])


def queue_pause(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="queue.pause", form_class=ReasonForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.queue_pause(
            actor=actor, queue=name, reason=form.cleaned_data["reason"]),
    )


def queue_resume(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="queue.pause", form_class=ReasonForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.queue_resume(
            actor=actor, queue=name, reason=form.cleaned_data["reason"]),
    )


def queue_purge(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="queue.purge", form_class=ConfirmNameForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.queue_purge(
            actor=actor, queue=name, confirm=form.cleaned_data["confirm"],
            reason=form.cleaned_data["reason"]),
    )


def queue_restore(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="queue.restore", form_class=ReasonForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.queue_stranded_restore(
            actor=actor, queue=name, reason=form.cleaned_data["reason"]),
    )
