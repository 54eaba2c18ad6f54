"""Beat's dispatch record: beat notes each periodic send in the shared cache; the console reads the times back."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone

from celery.signals import after_task_publish, beat_init

from taskops import cache

log = logging.getLogger(__name__)

LAST_DISPATCH_KEY = "taskops:beat:last-dispatch"
_SENT_KEY_PREFIX = "taskops:beat:sent:"
# Long enough for monthly schedules; the results table answers for older ones.
KEEP_SECONDS = 40 * 24 * 3600


def _sent_key(name: str) -> str:
    return _SENT_KEY_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:32]


def dispatch_record(sender=None, headers=None, **kwargs) -> None:
    """after_task_publish, in beat only: note when a periodic task was sent. Never fails the send."""
    name = (headers or {}).get("periodic_task_name")
    if not name or not isinstance(name, str):
        return
    at = datetime.now(timezone.utc).timestamp()
    try:
        cache.values_set({LAST_DISPATCH_KEY: {"at": at, "name": name}, _sent_key(name): at},
                         timeout=KEEP_SECONDS)
    except Exception:  # noqa: BLE001 - a dispatch record must never stop beat from sending
        log.exception("TaskOps: could not record the dispatch of %s", name)


@beat_init.connect
def dispatch_recording_start(sender=None, **kwargs) -> None:
    """In the beat process: record every periodic task beat publishes from now on."""
    after_task_publish.connect(dispatch_record, weak=False, dispatch_uid="taskops-beat-dispatch")


def _time(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def dispatch_read(names: list[str]) -> tuple[datetime | None, str, dict[str, datetime]]:
    """What beat recorded, in one cache round trip: its last send (time, schedule name) and the
    last send of each of `names` it recorded. Nothing when the cache is down or beat never sent."""
    keys = {_sent_key(name): name for name in names}
    found = cache.values_get([LAST_DISPATCH_KEY, *keys])
    last = found.pop(LAST_DISPATCH_KEY, None)
    last_at, last_name = (None, "")
    if isinstance(last, dict):
        last_at, last_name = _time(last.get("at")), str(last.get("name") or "")
    times = {keys[key]: _time(value) for key, value in found.items() if key in keys}
    return last_at, last_name, {name: at for name, at in times.items() if at is not None}
