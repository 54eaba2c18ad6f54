"""Worker pages: the list, one worker in full, and its pool, autoscale, rate limit and shutdown."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from taskops.conf import config
from taskops import selectors, services
from taskops.forms import AutoscaleForm, ConfirmNameForm, PoolForm, RateLimitForm, RevokeForm
from taskops.vocabulary import SIGNALS
from taskops.views.common import render_page, require, run_action


def worker_list(request: HttpRequest) -> HttpResponse:
    require(request, "worker.view")
    reading = selectors.cluster_reading()
    return render_page(
        request, "admin/taskops/worker_list.html", "Workers",
        {"reading": reading, "age_out_hours": config.worker_age_out_hours},
    )


def worker_detail(request: HttpRequest, name: str) -> HttpResponse:
    require(request, "worker.view")
    detail = selectors.worker_detail(name)
    return render_page(
        request, "admin/taskops/worker_detail.html", f"Worker {name}",
        {"name": name, "detail": detail, "signals": SIGNALS,
         "revoke_form": RevokeForm()},
    )


def _detail_url(name: str) -> str:
    return reverse("admin:taskops_worker_detail", args=[name])


def worker_pool(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="worker.control", form_class=PoolForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.worker_pool_resize(
            actor=actor, worker=name, delta=form.delta, reason=form.cleaned_data["reason"]),
    )


def worker_autoscale(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="worker.control", form_class=AutoscaleForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.worker_autoscale(
            actor=actor, worker=name, max_processes=form.cleaned_data["max_processes"],
            min_processes=form.cleaned_data["min_processes"], reason=form.cleaned_data["reason"]),
    )


def worker_rate_limit(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="worker.control", form_class=RateLimitForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.worker_rate_limit(
            actor=actor, worker=name, task_name=form.cleaned_data["task_name"],
            rate=form.cleaned_data["rate"], reason=form.cleaned_data["reason"]),
    )


def worker_shutdown(request: HttpRequest, name: str) -> HttpResponse:
    return run_action(
        request, action="worker.shutdown", form_class=ConfirmNameForm, fallback=_detail_url(name),
        perform=lambda actor, form: services.worker_shutdown(
            actor=actor, worker=name, confirm=form.cleaned_data["confirm"],
            reason=form.cleaned_data["reason"]),
    )
