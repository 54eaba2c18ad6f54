"""A paginator for tables of millions of rows: it counts at most a cap, never the whole table."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts the matching rows only up to COUNT_CAP (a bounded index scan, not a COUNT(*))."""

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        return self.object_list.values("pk")[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap
