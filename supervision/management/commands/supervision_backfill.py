"""Back-fill the supervision aggregates for a range of days (after installing the module, or after
correcting data): `manage.py supervision_backfill --from 2026-01-01 --to 2026-11-30`."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max, Min
from django.utils import timezone

from booking.models import Schedule
from supervision.services import stats_rebuild


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"日期格式应为yyyy-mm-dd：{value}") from None


class Command(BaseCommand):
    help = "重新计算监管指标的每日汇总（默认：从最早的排班日期到最晚的排班日期）"

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", help="起始日期 yyyy-mm-dd")
        parser.add_argument("--to", dest="date_to", help="截止日期 yyyy-mm-dd（含）")

    def handle(self, *args, date_from=None, date_to=None, **options):
        bounds = Schedule.objects.aggregate(first=Min("work_date"), last=Max("work_date"))
        today = timezone.localdate()
        start = _date(date_from) if date_from else (bounds["first"] or today)
        end = _date(date_to) if date_to else max(bounds["last"] or today, today)
        if end < start:
            raise CommandError("截止日期不能早于起始日期")
        run = stats_rebuild(date_from=start, date_to=end, trigger="backfill")
        self.stdout.write(f"已汇总{start}至{end}，写入{run.rows}行")
