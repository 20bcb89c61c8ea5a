"""Writes of the supervision module: rebuilding the daily aggregates from the platform's records
(read-only), and importing the hospitals' monthly outpatient visit totals from Excel."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO

from django.db import transaction
from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from booking.models import Order, Schedule
from referral import selectors as referral_selectors
from referral.models import Referral
from regional.errors import DomainError
from regional.models import Hospital, MessageLog
from supervision.definitions import (
    ANSWERED,
    MESSAGE_FIGURES,
    ORDER_FIGURES,
    SCHEDULE_FIGURES,
    orders_annotated,
    referral_figures,
    schedules_annotated,
)
from supervision.models import (
    COUNTER_FIELDS,
    LATENCY_BUCKETS_MS,
    LATENCY_FIELDS,
    ChannelDay,
    DoctorDay,
    HospitalDay,
    OutpatientVisits,
    ReferralDay,
    StatsRun,
)

# Days rebuilt in one transaction: bounded memory and lock time during a back-fill.
CHUNK_DAYS = 7


def _count(q: Q) -> Count:
    return Count("pk", filter=q) if q else Count("pk")


def _local_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def stats_rebuild(*, date_from: dt.date, date_to: dt.date, trigger: str = "manual") -> StatsRun:
    """Recompute every aggregate row of the days from `date_from` to `date_to` (inclusive).

    Each chunk of days is deleted and written again in one transaction, so a page never sees a
    half-built day, and running it twice gives the same rows (idempotent by the day).
    """
    if date_to < date_from:
        raise DomainError("截止日期不能早于起始日期")
    run = StatsRun.objects.create(date_from=date_from, date_to=date_to, trigger=trigger)
    day = date_from
    while day <= date_to:
        end = min(day + dt.timedelta(days=CHUNK_DAYS - 1), date_to)
        run.rows += _rebuild_days(day, end)
        day = end + dt.timedelta(days=1)
    run.finished_at = timezone.now()
    run.save(update_fields=["rows", "finished_at"])
    return run


def stats_rebuild_recent(*, now: dt.datetime | None = None, days_back: int = 14, days_ahead: int = 31) -> StatsRun:
    """The nightly window: late 2.4 reports and referral answers for past days, and bookings
    already made for the sessions of the coming weeks."""
    today = timezone.localdate(now)
    return stats_rebuild(
        date_from=today - dt.timedelta(days=days_back), date_to=today + dt.timedelta(days=days_ahead), trigger="nightly"
    )


@transaction.atomic
def _rebuild_days(date_from: dt.date, date_to: dt.date) -> int:
    for model in (DoctorDay, HospitalDay, ChannelDay):
        model.objects.filter(day__gte=date_from, day__lte=date_to).delete()
    ReferralDay.objects.filter(day__gte=date_from, day__lte=date_to).delete()
    doctors = _doctor_days(date_from, date_to)
    DoctorDay.objects.bulk_create(doctors, batch_size=2000)
    hospitals = _hospital_days(doctors, date_from, date_to)
    HospitalDay.objects.bulk_create(hospitals, batch_size=2000)
    channels = _channel_days(date_from, date_to)
    ChannelDay.objects.bulk_create(channels, batch_size=2000)
    referrals = _referral_days(date_from, date_to)
    ReferralDay.objects.bulk_create(referrals, batch_size=2000)
    return len(doctors) + len(hospitals) + len(channels) + len(referrals)


def _doctor_days(date_from: dt.date, date_to: dt.date) -> list[DoctorDay]:
    rows: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(COUNTER_FIELDS, 0))
    schedules = schedules_annotated(Schedule.objects.filter(work_date__gte=date_from, work_date__lte=date_to))
    aggregates = {name: _count(q) for name, (_label, q) in SCHEDULE_FIGURES.items()}
    aggregates["published"] = Sum("total", filter=SCHEDULE_FIGURES["sessions"][1])
    for row in schedules.values("hospital_id", "department_id", "doctor_id", "work_date").annotate(**aggregates):
        key = (row["hospital_id"], row["department_id"], row["doctor_id"], row["work_date"])
        target = rows[key]
        for name in (*SCHEDULE_FIGURES, "published"):
            target[name] = row[name] or 0
    tz = timezone.get_current_timezone()
    stopped = schedules.filter(SCHEDULE_FIGURES["sessions_stopped"][1]).values_list(
        "hospital_id", "department_id", "doctor_id", "work_date", "start_time", "stopped_at"
    )
    for hospital_id, department_id, doctor_id, work_date, start_time, stopped_at in stopped:
        if stopped_at is None:
            continue
        starts = dt.datetime.combine(work_date, start_time, tzinfo=tz)
        # A stop reported after the session began gave no notice at all.
        hours = max((starts - stopped_at).total_seconds() / 3600, 0.0)
        rows[(hospital_id, department_id, doctor_id, work_date)]["stop_notice_hours"] += hours
    orders = orders_annotated(
        Order.objects.filter(schedule__work_date__gte=date_from, schedule__work_date__lte=date_to)
    )
    order_aggregates = {name: _count(q) for name, (_label, q) in ORDER_FIGURES.items() if name in COUNTER_FIELDS}
    grouped = orders.values("hospital_id", "schedule__department_id", "schedule__doctor_id", "schedule__work_date")
    for row in grouped.annotate(**order_aggregates):
        key = (
            row["hospital_id"],
            row["schedule__department_id"],
            row["schedule__doctor_id"],
            row["schedule__work_date"],
        )
        target = rows[key]
        for name in order_aggregates:
            target[name] = row[name]
    return [
        DoctorDay(hospital_id=h, department_id=dep, doctor_id=doc, day=day, **counters)
        for (h, dep, doc, day), counters in rows.items()
    ]


def _latency_bucket() -> Case:
    whens = [When(duration_ms__lte=bound, then=Value(i)) for i, bound in enumerate(LATENCY_BUCKETS_MS)]
    return Case(*whens, default=Value(len(LATENCY_BUCKETS_MS)), output_field=IntegerField())


def _hospital_days(doctors: list[DoctorDay], date_from: dt.date, date_to: dt.date) -> list[HospitalDay]:
    rows: dict[tuple, HospitalDay] = {}

    def row(hospital_id: int, day: dt.date) -> HospitalDay:
        if (hospital_id, day) not in rows:
            rows[(hospital_id, day)] = HospitalDay(hospital_id=hospital_id, day=day)
        return rows[(hospital_id, day)]

    for doctor in doctors:
        target = row(doctor.hospital_id, doctor.day)
        for name in COUNTER_FIELDS:
            setattr(target, name, getattr(target, name) + getattr(doctor, name))
    tz = timezone.get_current_timezone()
    calls = MessageLog.objects.filter(
        created_at__gte=_local_start(date_from),
        created_at__lt=_local_start(date_to + dt.timedelta(days=1)),
        hospital__isnull=False,
    ).annotate(sv_day=TruncDate("created_at", tzinfo=tz))
    figures = {name: _count(q) for name, (_label, q) in MESSAGE_FIGURES.items() if name != "calls_out_unanswered"}
    for item in calls.values("hospital_id", "sv_day").annotate(**figures):
        target = row(item["hospital_id"], item["sv_day"])
        for name in figures:
            setattr(target, name, item[name])
    answered = calls.filter(Q(direction=MessageLog.OUTBOUND) & ANSWERED).annotate(sv_bucket=_latency_bucket())
    for item in answered.values("hospital_id", "sv_day", "sv_bucket").annotate(n=Count("pk")):
        setattr(row(item["hospital_id"], item["sv_day"]), LATENCY_FIELDS[item["sv_bucket"]], item["n"])
    return list(rows.values())


def _channel_days(date_from: dt.date, date_to: dt.date) -> list[ChannelDay]:
    orders = Order.objects.filter(schedule__work_date__gte=date_from, schedule__work_date__lte=date_to)
    figures = {name: _count(ORDER_FIGURES[name][1]) for name in ("lock_attempts", "locks_confirmed", "bookings")}
    return [
        ChannelDay(hospital_id=r["hospital_id"], channel_id=r["channel_id"], day=r["schedule__work_date"], **r2)
        for r in orders.values("hospital_id", "channel_id", "schedule__work_date").annotate(**figures)
        for r2 in [{name: r[name] for name in figures}]
    ]


def _referral_days(date_from: dt.date, date_to: dt.date) -> list[ReferralDay]:
    tz = timezone.get_current_timezone()
    figures = referral_figures(now=timezone.now(), limit=referral_selectors.pending_limit())
    counted = {name: _count(q) for name, (_label, q) in figures.items() if name not in ("up", "down")}
    query = Referral.objects.filter(
        submitted_at__gte=_local_start(date_from),
        submitted_at__lt=_local_start(date_to + dt.timedelta(days=1)),
        receiving_hospital__isnull=False,
    ).annotate(sv_day=TruncDate("submitted_at", tzinfo=tz))
    grouped = query.values("sv_day", "sending_hospital_id", "receiving_hospital_id", "direction").annotate(**counted)
    return [
        ReferralDay(
            day=row["sv_day"],
            sending_id=row["sending_hospital_id"],
            receiving_id=row["receiving_hospital_id"],
            direction=row["direction"],
            **{name: row[name] for name in counted},
        )  # fmt: skip
        for row in grouped.order_by()
    ]


# -- import of monthly outpatient visits ----------------------------------------------------------------

VISIT_COLUMNS = [
    ("hospital_no", "医院编号"),
    ("month", "月份"),
    ("total_visits", "门诊诊疗总人次"),
    ("emergency_visits", "急诊人次"),
    ("other_appointment_visits", "平台外预约诊疗人次"),
]
MONTH_TEXT = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?\s*$")
MAX_IMPORT_ROWS = 5000


class VisitsImportRefused(DomainError):
    """The file is refused as a whole; `problems` name the row and column of each fault."""

    code = "visits_import_refused"

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "；".join(problems[:10]) + (f"；另有{len(problems) - 10}处错误" if len(problems) > 10 else "")
        super().__init__(f"文件未导入（未写入任何数据）：{shown}")


@dataclass
class VisitsImport:
    created: int = 0
    updated: int = 0
    months: list[str] = field(default_factory=list)


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _month(value) -> dt.date | None:
    if isinstance(value, dt.datetime | dt.date):
        return dt.date(value.year, value.month, 1)
    match = MONTH_TEXT.match(str(value or ""))
    if match and 1 <= int(match.group(2)) <= 12:
        return dt.date(int(match.group(1)), int(match.group(2)), 1)
    return None


def _count_cell(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else None


def visits_import(*, file: IO[bytes], filename: str = "") -> VisitsImport:
    """Import 门诊诊疗人次 per hospital and month from the first sheet of an .xlsx file.

    Header row: 医院编号, 月份 (2026-11 or an Excel date), 门诊诊疗总人次, 急诊人次, 平台外预约诊疗人次.
    The whole file is checked first; any fault refuses it with every row and column named, and
    nothing is written. A month already imported for a hospital is replaced.
    """
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a non-xlsx file
        raise VisitsImportRefused([f"不是有效的Excel（.xlsx）文件：{type(exc).__name__}"]) from None
    sheet = workbook.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = [str(v).strip() if v is not None else "" for v in next(rows, ())]
    problems: list[str] = []
    expected = [label for _name, label in VISIT_COLUMNS]
    if header[: len(expected)] != expected:
        for index, label in enumerate(expected):
            found = header[index] if index < len(header) else ""
            if found != label:
                problems.append(f"第1行 {_column_letter(index)}列：表头应为“{label}”，实际为“{found}”")
        raise VisitsImportRefused(problems)
    hospitals = dict(Hospital.objects.filter(is_deleted=False).values_list("hospital_no", "pk"))
    parsed: dict[tuple[int, dt.date], dict] = {}
    for number, values in enumerate(rows, start=2):
        values = list(values) + [None] * (len(VISIT_COLUMNS) - len(values))
        if all(v is None or str(v).strip() == "" for v in values[: len(VISIT_COLUMNS)]):
            continue
        if number > MAX_IMPORT_ROWS + 1:
            problems.append(f"第{number}行：一次最多导入{MAX_IMPORT_ROWS}行")
            break

        def bad(index: int, text: str, number: int = number) -> None:
            problems.append(f"第{number}行 {_column_letter(index)}列（{VISIT_COLUMNS[index][1]}）：{text}")

        hospital_no = str(values[0] or "").strip()
        hospital_id = hospitals.get(hospital_no)
        if not hospital_no:
            bad(0, "不能为空")
        elif hospital_id is None:
            bad(0, f"医院“{hospital_no}”未在平台登记")
        month = _month(values[1])
        if month is None:
            bad(1, f"应为年月（例如2026-11），实际为“{values[1] if values[1] is not None else ''}”")
        counts = {}
        for index in (2, 3, 4):
            count = _count_cell(values[index]) if (index < 4 or values[index] not in (None, "")) else 0
            if count is None:
                bad(index, f"应为非负整数，实际为“{values[index] if values[index] is not None else ''}”")
            counts[VISIT_COLUMNS[index][0]] = count
        total, emergency = counts["total_visits"], counts["emergency_visits"]
        if total is not None and emergency is not None and emergency > total:
            bad(3, f"急诊人次（{emergency}）不能大于门诊诊疗总人次（{total}）")
        if hospital_id is not None and month is not None:
            if (hospital_id, month) in parsed:
                bad(1, f"医院“{hospital_no}”{month:%Y-%m}在文件中重复")
            parsed[(hospital_id, month)] = counts
    if problems:
        raise VisitsImportRefused(problems)
    if not parsed:
        raise VisitsImportRefused(["文件中没有数据行"])
    result = VisitsImport()
    with transaction.atomic():
        for (hospital_id, month), counts in parsed.items():
            _row, created = OutpatientVisits.objects.update_or_create(
                hospital_id=hospital_id,
                month=month,
                defaults={**counts, "source_file": filename[:200], "imported_at": timezone.now()},
            )
            result.created += created
            result.updated += not created
    result.months = sorted({f"{month:%Y-%m}" for _h, month in parsed})
    return result
