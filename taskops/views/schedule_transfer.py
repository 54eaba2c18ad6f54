"""Schedule import and export: download the schedules as a file; upload one, see what it changes, confirm."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from taskops.conf import config
from taskops.forms import ReasonForm
from taskops.schedules.transfer import (
    FORMATS,
    TransferError,
    file_size_text,
    format_for_file_name,
    payload_dump,
)
from taskops.services import Actor
from taskops.services.approvals import MIN_REASON_LENGTH
from taskops.services.schedule_transfer import (
    schedule_export as export_service,
    schedule_import as import_service,
    schedule_import_preview as preview_service,
)
from taskops.views.common import render_page, require, run_action
from taskops.web import schedule_list_url, transfer_url

FORMAT_CHOICES = [("json", "JSON"), ("yaml", "YAML"), ("csv", "CSV"), ("xlsx", "XLSX (Excel)")]


class ScheduleImportForm(forms.Form):
    file = forms.FileField()
    file_format = forms.ChoiceField(
        label="Format", required=False,
        choices=[("", "from the file name"), *FORMAT_CHOICES],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = f"At most {file_size_text()}."

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is None:
            return data
        if upload.size > config.import_max_file_bytes:
            self.add_error("file", f"The file is larger than {file_size_text()}.")
        data["file_format"] = data.get("file_format") or format_for_file_name(upload.name or "")
        if not data["file_format"]:
            self.add_error("file_format", "Choose the format: the file name does not say it "
                                          "(.json, .yaml, .csv or .xlsx).")
        return data


class ScheduleImportConfirmForm(ReasonForm):
    payload = forms.CharField(widget=forms.HiddenInput)


def _import_page(request: HttpRequest, form: ScheduleImportForm) -> HttpResponse:
    return render_page(request, "admin/taskops/schedule_import.html", "Import schedules", {
        "form": form, "list_url": schedule_list_url(),
        "import_url": transfer_url("import"),
    })


def schedule_import(request: HttpRequest) -> HttpResponse:
    """GET: the upload form. POST: read the file and show what importing it would create, change
    and leave alone (a dry run: nothing is written)."""
    require(request, "schedule.import")
    if request.method != "POST":
        return _import_page(request, ScheduleImportForm())
    form = ScheduleImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _import_page(request, form)
    upload = form.cleaned_data["file"]
    file_name = (upload.name or "schedules")[:200]
    try:
        plan = preview_service(content=upload.read(config.import_max_file_bytes + 1), file_name=file_name,
                               file_format=form.cleaned_data["file_format"])
    except TransferError as exc:
        form.add_error("file", str(exc))
        return _import_page(request, form)
    payload = ""
    if plan.can_import:
        payload = payload_dump(user_id=request.user.pk, file_name=plan.file_name,
                               file_format=plan.file_format, entries=list(plan.entries),
                               fingerprint=plan.fingerprint)
    return render_page(request, "admin/taskops/schedule_import_preview.html",
                       f"Import {file_name}: preview", {
                           "plan": plan, "payload": payload, "list_url": schedule_list_url(),
                           "import_url": transfer_url("import"),
                           "confirm_url": transfer_url("import_confirm"),
                           "min_reason_length": MIN_REASON_LENGTH,
                       })


def schedule_import_confirm(request: HttpRequest) -> HttpResponse:
    """POST: import what the preview showed (all of it or nothing), with the typed reason."""
    return run_action(
        request, action="schedule.import", form_class=ScheduleImportConfirmForm,
        fallback=schedule_list_url(),
        perform=lambda actor, form: import_service(
            actor=actor, payload=form.cleaned_data["payload"], reason=form.cleaned_data["reason"]),
    )


def schedule_export(request: HttpRequest) -> HttpResponse:
    """GET ?format=json|yaml|csv|xlsx (default json), optionally ?name=... for some schedules: a download."""
    require(request, "schedule.export")
    file_format = (request.GET.get("format") or "json").lower()
    if file_format not in FORMATS:
        messages.error(request, f"Unknown export format: use one of {', '.join(FORMATS)}.")
        return HttpResponseRedirect(schedule_list_url())
    try:
        exported = export_service(actor=Actor.from_request(request), file_format=file_format,
                                  names=request.GET.getlist("name"))
    except TransferError as exc:
        messages.error(request, f"Nothing was exported: {exc}")
        return HttpResponseRedirect(schedule_list_url())
    response = HttpResponse(exported.content, content_type=exported.content_type)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="schedules-{stamp}.{file_format}"'
    return response
