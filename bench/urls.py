"""The platform's URLs plus `/bench/bare`: a bare Django view parsing the same XML with lxml.

It is the baseline of the load run's SOAP ratio: what the SOAP path costs beyond reading the body.
"""

import json

from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from lxml import etree

from config.urls import urlpatterns as platform

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@csrf_exempt
def bare(request):
    root = etree.fromstring(request.body, PARSER)
    inner = next(e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("}xml"))
    message = etree.fromstring(inner.text.encode(), PARSER)
    answer = f"<Response><ResultCode>0</ResultCode><HospitalNo>{message.findtext('HospitalNo')}</HospitalNo></Response>"
    return HttpResponse(answer, content_type="text/xml; charset=utf-8")


@csrf_exempt
def bare_upsert(request):
    """The SOAP baseline: read the same envelope with lxml and write the one row in a transaction."""
    root = etree.fromstring(request.body, PARSER)
    inner = next(e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("}xml"))
    message = etree.fromstring(inner.text.encode(), PARSER)
    hospital_no = message.findtext("HospitalNo")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE regional_hospital SET name = %s WHERE hospital_no = %s",
            [message.findtext("HospitalName"), hospital_no],
        )
    answer = f"<Response><ResultCode>0</ResultCode><HospitalNo>{hospital_no}</HospitalNo></Response>"
    return HttpResponse(answer, content_type="text/xml; charset=utf-8")


SCHEDULES_SQL = """
SELECT s.id, s.work_id, h.hospital_no, s.department_code, d.name, s.doctor_code, doc.name, s.work_date,
       s.time_code, s.start_time, s.stop_time, s.registration_type_name, s.price, s.remaining, s.total,
       s.status, s.stop_reason
FROM booking_schedule s
JOIN regional_hospital h ON h.id = s.hospital_id
LEFT JOIN regional_department d ON d.id = s.department_id
LEFT JOIN regional_doctor doc ON doc.id = s.doctor_id
WHERE s.status IN ('normal', 'stopped') AND s.work_date = %s AND h.hospital_no = %s
  AND s.department_id IN (SELECT d2.id FROM regional_department d2 JOIN regional_hospital h2 ON h2.id = d2.hospital_id
                          WHERE h2.hospital_no = %s AND d2.department_id = %s)
ORDER BY s.work_date, s.start_time, s.id
LIMIT 51
"""
SCHEDULE_KEYS = (
    "id", "work_id", "hospital_no", "department_id", "department_name", "doctor_id", "doctor_name", "work_date",
    "time_code", "start_time", "stop_time", "registration_type_name", "price", "remaining", "total", "status",
    "stop_reason",
)  # fmt: skip


def bare_schedules(request):
    """The browse baseline: the same query as /api/v1/schedules/, raw, one page as JSON."""
    q = request.GET
    with connection.cursor() as cursor:
        cursor.execute(SCHEDULES_SQL, [q["date"], q["hospital"], q["hospital"], q["department"]])
        rows = cursor.fetchall()
    results = [dict(zip(SCHEDULE_KEYS, row, strict=True)) for row in rows[:50]]
    return HttpResponse(json.dumps({"next": None, "results": results}, default=str), content_type="application/json")


SCHEDULES_BY_DAY_SQL = """
SELECT s.id, s.work_id, h.hospital_no, s.department_code, d.name, s.doctor_code, doc.name, s.work_date,
       s.time_code, s.start_time, s.stop_time, s.registration_type_name, s.price, s.remaining, s.total,
       s.status, s.stop_reason
FROM booking_schedule s
JOIN regional_hospital h ON h.id = s.hospital_id
LEFT JOIN regional_department d ON d.id = s.department_id
LEFT JOIN regional_doctor doc ON doc.id = s.doctor_id
WHERE s.status IN ('normal', 'stopped') AND s.work_date = %s AND h.hospital_no = %s
ORDER BY s.work_date, s.start_time, s.id
LIMIT 51
"""


def bare_schedules_by_day(request):
    """The mixed load's browse baseline: `?hospital=…&date=…` (no department), raw, one page as JSON."""
    q = request.GET
    with connection.cursor() as cursor:
        cursor.execute(SCHEDULES_BY_DAY_SQL, [q["date"], q["hospital"]])
        rows = cursor.fetchall()
    results = [dict(zip(SCHEDULE_KEYS, row, strict=True)) for row in rows[:50]]
    return HttpResponse(json.dumps({"next": None, "results": results}, default=str), content_type="application/json")


def _page(cursor, keys: tuple[str, ...]) -> HttpResponse:
    rows = cursor.fetchall()
    results = [dict(zip(keys, row, strict=True)) for row in rows[:50]]
    body = json.dumps({"next": None, "previous": None, "results": results}, default=str, ensure_ascii=False)
    return HttpResponse(body, content_type="application/json")


def bare_hospitals(request):
    """The hospital list's baseline: the columns the channel sees, one page."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hospital_no, name, short_name, degree_code || degree_name, degree_name, address, phone"
            " FROM regional_hospital WHERE NOT is_deleted ORDER BY hospital_no LIMIT 51"
        )
        return _page(cursor, ("hospital_no", "name", "short_name", "level", "degree_name", "address", "phone"))


def bare_departments(request):
    """A hospital's departments, the baseline: one query by hospital number, one page."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.department_id, d.name, d.name_abbr, d.parent_department_id, d.location, d.is_outpatient"
            " FROM regional_department d JOIN regional_hospital h ON h.id = d.hospital_id"
            " WHERE h.hospital_no = %s AND NOT h.is_deleted AND NOT d.is_deleted ORDER BY d.department_id, d.id LIMIT 51",
            [request.GET["hospital"]],
        )
        return _page(
            cursor, ("department_id", "name", "name_abbr", "parent_department_id", "location", "is_outpatient")
        )


def bare_doctors(request):
    """Doctors by hospital and department, the baseline: the columns the channel sees, one page."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT h.hospital_no, doc.doctor_id, doc.name, doc.name_abbr, doc.department_code, dep.name, doc.title,"
            " doc.is_expert, doc.skill FROM regional_doctor doc JOIN regional_hospital h ON h.id = doc.hospital_id"
            " JOIN regional_department dep ON dep.id = doc.department_id"
            " WHERE NOT doc.is_deleted AND h.hospital_no = %s AND dep.department_id = %s ORDER BY doc.id LIMIT 51",
            [request.GET["hospital"], request.GET["department"]],
        )
        return _page(
            cursor,
            ("hospital_no", "doctor_id", "name", "name_abbr", "department_id", "department_name", "title",
             "is_expert", "skill"),
        )  # fmt: skip


@csrf_exempt
def bare_lock_refusal(request):
    """The rush's refusal baseline: read the JSON body, one query for the session's count, answer
    409 once it is empty (what refusing from the platform's own count cannot avoid)."""
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.remaining FROM booking_schedule s JOIN regional_hospital h ON h.id = s.hospital_id"
            " WHERE h.hospital_no = %s AND s.work_id = %s",
            [body["hospital_no"], body["work_id"]],
        )
        row = cursor.fetchone()
    if row is None or row[0] <= 0:
        answer = {"code": "schedule_full", "message": f"排班{body['work_id']}号源已满，请选择其他排班或时段"}
        return HttpResponse(json.dumps(answer, ensure_ascii=False), status=409, content_type="application/json")
    return HttpResponse(status=204)


urlpatterns = [
    path("bench/bare", bare),
    path("bench/bare-schedules", bare_schedules),
    path("bench/bare-upsert", bare_upsert),
    path("bench/bare-schedules-by-day", bare_schedules_by_day),
    path("bench/bare-lock-refusal", bare_lock_refusal),
    path("bench/bare-hospitals", bare_hospitals),
    path("bench/bare-departments", bare_departments),
    path("bench/bare-doctors", bare_doctors),
    *platform,
]
