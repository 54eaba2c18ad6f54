"""Paging tables of millions of rows: counts capped at a limit, deep pages by key instead of offset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

COUNT_CAP = 10_000
# Query parameters of a keyset page: runs older / newer than a (date_done, id) key.
OLDER, NEWER = "before", "after"
CURSOR_PARAMS = (OLDER, NEWER)


class CappedCountPaginator(Paginator):
    """Counts the matching rows only up to COUNT_CAP (a bounded index scan, not a COUNT(*))."""

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        return self.object_list.values("pk")[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap


@dataclass(frozen=True)
class Cursor:
    """A position in a list ordered newest first by (date_done, id): the page starts past it."""

    direction: str  # OLDER or NEWER
    when: datetime
    pk: int | None = None  # None: every run at `when` is past it (a date to jump to)

    @classmethod
    def parse(cls, direction: str, value: str) -> Cursor:
        """`<ISO date or datetime>[,<id>]`; a time without a zone is in the current time zone.

        Raises ValueError on anything else.
        """
        text, _, pk = value.strip().partition(",")
        try:
            parsed = datetime.fromisoformat(text.strip())  # a date alone is its midnight
            if timezone.is_naive(parsed):
                parsed = timezone.make_aware(parsed)
            timezone.localtime(parsed)  # shown back in the current time zone
            parsed = parsed.astimezone(dt_timezone.utc)
        except OverflowError as exc:  # a zone pushed it past year 1 or 9999
            raise ValueError(str(exc)) from exc
        key = int(pk) if pk.strip() else None
        if key is not None and not 0 <= key < 2**63:
            raise ValueError(f"no run has id {key}")
        return cls(direction, parsed, key)

    @property
    def value(self) -> str:
        return self.when.isoformat() + ("" if self.pk is None else f",{self.pk}")

    @classmethod
    def of(cls, direction: str, row) -> Cursor:
        """The cursor just past `row` (anything with date_done and pk) in `direction`."""
        return cls(direction, row.date_done, row.pk)


def keyset_page(queryset: QuerySet, cursor: Cursor, size: int) -> tuple[list, bool]:
    """Up to `size` rows past `cursor`, newest first, and whether there are more beyond them.

    `date_done <= key` (or `>=`) bounds the index range scan; the id breaks ties between runs
    finished in the same microsecond. Cost does not grow with the depth of the page.
    """
    when, pk = cursor.when, cursor.pk
    if cursor.direction == OLDER:
        if pk is None:
            rows = queryset.filter(date_done__lt=when)
        else:
            rows = queryset.filter(date_done__lte=when).filter(Q(date_done__lt=when) | Q(pk__lt=pk))
        rows = list(rows.order_by("-date_done", "-pk")[: size + 1])
        return rows[:size], len(rows) > size
    if pk is None:
        rows = queryset.filter(date_done__gt=when)
    else:
        rows = queryset.filter(date_done__gte=when).filter(Q(date_done__gt=when) | Q(pk__gt=pk))
    rows = list(rows.order_by("date_done", "pk")[: size + 1])
    return rows[:size][::-1], len(rows) > size
