"""Writes to the region's master data, as the public interfaces 5.1–5.3 deliver it.

Each batch is applied in one transaction with a constant number of statements (bulk upserts),
however many records it carries.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping, Sequence
from functools import lru_cache

from django.db import transaction
from django.db.models.signals import post_save
from pypinyin import Style, lazy_pinyin

from regional.bulk import update_row, upsert
from regional.errors import DomainError
from regional.models import Department, Doctor, DoctorIcon, Hospital, HospitalCredential, HospitalImage

BATCH = 2000


@lru_cache(maxsize=20000)
def pinyin_abbr(text: str) -> str:
    """`心血管内科` → `XXGNK`: the initials channels and staff search by."""
    if not text:
        return ""
    return "".join(p[0] for p in lazy_pinyin(text, style=Style.FIRST_LETTER, errors="default") if p).upper()[:100]


def hospital_onboard(
    *,
    hospital_no: str,
    name: str | None = None,
    secret: str | None = None,
    allowed_networks: Sequence[str] = (),
    endpoint_url: str | None = None,
    interface: Mapping[str, str] | None = None,
) -> tuple[Hospital, str | None]:
    """Create or update a hospital's credentials and interface settings; returns the new secret when
    one was generated. `interface` holds Hospital fields (wsdl_url, soap_namespace, soap_part_name,
    soap_part_form, soap_action_style, soap_version, soap_encoding, interface_version); each is checked."""
    settings = {attr: _interface_setting(attr, value) for attr, value in (interface or {}).items()}  # before any write
    hospital, created = Hospital.objects.get_or_create(hospital_no=hospital_no, defaults={"name": name or hospital_no})
    if name and hospital.name != name:
        hospital.name = name
    if endpoint_url is not None:
        hospital.endpoint_url = endpoint_url
    for attr, value in settings.items():
        setattr(hospital, attr, value)
    hospital.save()
    credential = HospitalCredential.objects.filter(hospital=hospital).first() or HospitalCredential(hospital=hospital)
    generated = None
    if secret is None and not credential.secret_hash:
        secret = generated = HospitalCredential.generate_secret()
    if secret is not None:
        if len(secret) < 16:
            raise DomainError("密钥长度至少16个字符")
        credential.set_secret(secret)
    if allowed_networks:
        credential.allowed_networks = "\n".join(allowed_networks)
        credential.networks()  # raises ValueError on a bad CIDR before anything is saved
    credential.save()
    return hospital, generated


_INTERFACE_SETTINGS = (
    "wsdl_url",
    "soap_namespace",
    "soap_part_name",
    "soap_part_form",
    "soap_action_style",
    "soap_version",
    "soap_encoding",
    "interface_version",
)


def _interface_setting(attr: str, value: str) -> str:
    if attr not in _INTERFACE_SETTINGS:
        raise ValueError(f"不是医院接口设置：{attr}")
    value = (value or "").strip()
    field = Hospital._meta.get_field(attr)
    if field.choices and value not in {code for code, _label in field.choices}:
        raise DomainError(f"{field.verbose_name}应为{'、'.join(code for code, _ in field.choices)}之一")
    if attr == "interface_version" and value not in Hospital.INTERFACE_VERSIONS:
        raise DomainError(f"接口版本应为{'、'.join(Hospital.INTERFACE_VERSIONS)}之一")
    if attr == "soap_encoding":
        try:
            codecs.lookup(value)
        except LookupError:
            raise DomainError(f"无法识别的报文编码：{value}") from None
    if attr == "soap_part_name" and not value:
        raise DomainError("参数名不能为空")
    return value


_HOSPITAL_INFO = (
    ("short_name", "HospitalShortName"),
    ("degree_code", "DegreeCode"),
    ("degree_name", "DegreeName"),
    ("phone", "Phone"),
    ("address", "Addr"),
    ("description", "Desc"),
    ("website", "Website"),
    ("bus_route", "BusRoute"),
)
_HOSPITAL_INFO_FIELDS = ("name", *(attr for attr, _ in _HOSPITAL_INFO), "seq_no", "is_deleted", "updated_at")


# No savepoint: called inside the inbound pipeline's transaction, an error here fails the whole message
# anyway, and the SAVEPOINT/RELEASE pair were two of a HospitalInfo push's nine round trips.
@transaction.atomic(savepoint=False)
def hospital_info_apply(*, hospital: Hospital, info: dict) -> Hospital:
    """5.1: the hospital's own description of itself; `IsDelete` is a soft delete. Only the columns
    the message describes are written (the interface settings staff keep on the row are not), and
    the receivers of a save are told as for `save(update_fields=…)` (the credential cache)."""
    hospital.name = info["HospitalName"]
    for attr, key in _HOSPITAL_INFO:
        setattr(hospital, attr, info.get(key) or "")
    hospital.seq_no = info.get("SeqNo")
    hospital.is_deleted = bool(info.get("IsDelete"))
    if not update_row(hospital, _HOSPITAL_INFO_FIELDS):
        raise DomainError(f"医院{hospital.hospital_no}不存在")
    post_save.send(
        sender=Hospital, instance=hospital, created=False, update_fields=frozenset(_HOSPITAL_INFO_FIELDS), raw=False,
        using=transaction.get_connection().alias,
    )  # fmt: skip
    if info.get("Image") is not None:  # absent: the picture sent before stays
        HospitalImage.objects.bulk_create(
            [HospitalImage(hospital=hospital, image=info["Image"])],
            update_conflicts=True, unique_fields=["hospital"], update_fields=["image", "updated_at"],
        )  # fmt: skip
    return hospital


def _flag(value: str | None) -> bool:
    return value == "1"


@transaction.atomic
def departments_apply(*, hospital: Hospital, records: Sequence[dict]) -> int:
    """5.2: upsert departments by (hospital, DepartmentId) and link the tree by ParentDepartmentId."""
    rows = {}
    for r in records:
        rows[r["DepartmentId"]] = Department(
            hospital=hospital,
            department_id=r["DepartmentId"],
            name=r["DepartmentName"],
            name_abbr=r.get("DepartmentNameAbbr") or pinyin_abbr(r["DepartmentName"]),
            gb_id=r.get("DepartmentIdGB") or "",
            gb_name=r.get("DepartmentNameGB") or "",
            professional_gb_id=r.get("ProfessionalIdGB") or "",
            professional_gb_name=r.get("ProfessionalNameGB") or "",
            professional_abbr=r.get("ProfessionalNameAbbr") or pinyin_abbr(r.get("ProfessionalNameGB") or ""),
            description=r.get("Desc") or "",
            parent_department_id=r.get("ParentDepartmentId") or "",
            is_hospitalization=_flag(r.get("IsHospitalization")),
            is_outpatient=_flag(r.get("IsOutpatient")),
            outpatient_type=r.get("OutpatientType") or ("1" if _flag(r.get("IsOutpatient")) else ""),
            location=r.get("DepartAddr") or "",
            seq_no=r.get("SeqNo"),
            is_deleted=bool(r.get("IsDelete")),
        )
    update_fields = [
        "name", "name_abbr", "gb_id", "gb_name", "professional_gb_id", "professional_gb_name", "professional_abbr",
        "description", "parent_department_id", "is_hospitalization", "is_outpatient", "outpatient_type", "location",
        "seq_no", "is_deleted", "updated_at",
    ]  # fmt: skip
    upsert(Department, rows.values(), unique_fields=["hospital", "department_id"], update_fields=update_fields)
    _departments_link_parents(hospital=hospital, department_ids=list(rows))
    return len(records)


def _departments_link_parents(*, hospital: Hospital, department_ids: list[str]) -> None:
    sent = list(
        Department.objects.filter(hospital=hospital, department_id__in=department_ids).only(
            "pk", "department_id", "parent_department_id", "parent_id"
        )
    )
    wanted = {d.parent_department_id for d in sent if d.parent_department_id}
    pks = dict(
        Department.objects.filter(hospital=hospital, department_id__in=wanted).values_list("department_id", "pk")
    )
    changed = []
    for dept in sent:
        parent_pk = pks.get(dept.parent_department_id) if dept.parent_department_id else None
        if parent_pk == dept.pk:
            parent_pk = None
        if dept.parent_id != parent_pk:
            dept.parent_id = parent_pk
            changed.append(dept)
    Department.objects.bulk_update(changed, ["parent"], batch_size=BATCH)
    # Children sent earlier whose parent arrived only now.
    orphans = Department.objects.filter(hospital=hospital, parent__isnull=True, parent_department_id__in=department_ids)
    late = []
    all_pks = dict(
        Department.objects.filter(hospital=hospital, department_id__in=department_ids).values_list(
            "department_id", "pk"
        )
    )
    for dept in orphans.only("pk", "parent_department_id"):
        dept.parent_id = all_pks.get(dept.parent_department_id)
        if dept.parent_id and dept.parent_id != dept.pk:
            late.append(dept)
    Department.objects.bulk_update(late, ["parent"], batch_size=BATCH)


def departments_ensure(*, hospital: Hospital, named: dict[str, str]) -> dict[str, int]:
    """DepartmentId → pk, creating departments that a doctor or schedule record names but nobody sent."""
    existing = dict(
        Department.objects.filter(hospital=hospital, department_id__in=list(named)).values_list("department_id", "pk")
    )
    missing = [
        Department(hospital=hospital, department_id=dept_id, name=name, name_abbr=pinyin_abbr(name), is_outpatient=True)
        for dept_id, name in named.items()
        if dept_id not in existing
    ]
    if missing:
        Department.objects.bulk_create(missing, batch_size=BATCH, ignore_conflicts=True)
        existing.update(
            Department.objects.filter(
                hospital=hospital, department_id__in=[d.department_id for d in missing]
            ).values_list("department_id", "pk")
        )
    return existing


@transaction.atomic
def doctors_apply(*, hospital: Hospital, records: Sequence[dict]) -> int:
    """5.3: upsert doctors by (hospital, DoctorId); a department named only here is created."""
    departments = departments_ensure(hospital=hospital, named={r["DepartmentId"]: r["DepartmentName"] for r in records})
    rows, icons = {}, {}
    for r in records:
        icons[r["DoctorId"]] = r.get("Icon")
        rows[r["DoctorId"]] = Doctor(
            hospital=hospital,
            doctor_id=r["DoctorId"],
            name=r["DoctorName"],
            name_abbr=r.get("DoctorNameAbbr") or pinyin_abbr(r["DoctorName"]),
            sex_code=r.get("DoctorSexCode") or "",
            sex_name=r.get("DoctorSexName") or "",
            education_code=r.get("DoctorEducationCode") or "",
            education_name=r.get("DoctorEducationName") or "",
            position_code=r.get("DoctorPositionCode") or "",
            position_name=r.get("DoctorPositionName") or "",
            practice_year=r.get("DoctorYear") or "",
            skill=r.get("DoctorSkill") or "",
            description=r.get("DoctorDesc") or "",
            title_code=r.get("DoctorDegreeCode") or "",
            title=r.get("DoctorDegreeName") or "",
            department_code=r["DepartmentId"],
            department_id=departments.get(r["DepartmentId"]),
            is_expert=_flag(r.get("IsZJ")),
            seq_no=r.get("SeqNo"),
            is_deleted=bool(r.get("IsDelete")),
        )
    count = _doctors_upsert(list(rows.values()), len(records))
    _doctor_icons_apply(hospital=hospital, icons=icons)
    return count


def _doctor_icons_apply(*, hospital: Hospital, icons: Mapping[str, bytes | None]) -> None:
    """The photos of the doctors just sent: stored where sent, removed where the record has none
    (as the record's other fields, the record is the doctor's whole description)."""
    without = [doctor_id for doctor_id, icon in icons.items() if icon is None]
    if without:
        DoctorIcon.objects.filter(doctor__hospital=hospital, doctor__doctor_id__in=without).delete()
    sent = {doctor_id: icon for doctor_id, icon in icons.items() if icon is not None}
    if sent:
        pks = dict(Doctor.objects.filter(hospital=hospital, doctor_id__in=list(sent)).values_list("doctor_id", "pk"))
        DoctorIcon.objects.bulk_create(
            [DoctorIcon(doctor_id=pks[doctor_id], icon=icon) for doctor_id, icon in sent.items()],
            batch_size=20, update_conflicts=True, unique_fields=["doctor"], update_fields=["icon", "updated_at"],
        )  # fmt: skip


def _doctors_upsert(doctors: list[Doctor], count: int) -> int:
    update_fields = [
        "name", "name_abbr", "sex_code", "sex_name", "education_code", "education_name", "position_code",
        "position_name", "practice_year", "skill", "description", "title_code", "title", "department_code",
        "department", "is_expert", "seq_no", "is_deleted", "updated_at",
    ]  # fmt: skip
    upsert(Doctor, doctors, unique_fields=["hospital", "doctor_id"], update_fields=update_fields)
    return count


def doctors_ensure(*, hospital: Hospital, named: dict[str, tuple[str, str]]) -> dict[str, int]:
    """DoctorId → pk, creating doctors that a schedule record names but DoctorInfo never sent.

    `named` maps DoctorId → (DoctorName, DepartmentId); call `departments_ensure` first so the
    department of a new doctor exists. Doctors already known are left as they are.
    """
    existing = dict(Doctor.objects.filter(hospital=hospital, doctor_id__in=list(named)).values_list("doctor_id", "pk"))
    wanted = {doc_id: named[doc_id] for doc_id in named if doc_id not in existing}
    if wanted:
        department_pks = dict(
            Department.objects.filter(
                hospital=hospital, department_id__in={dept for _, dept in wanted.values()}
            ).values_list("department_id", "pk")
        )
        Doctor.objects.bulk_create(
            [
                Doctor(
                    hospital=hospital,
                    doctor_id=doc_id,
                    name=name,
                    name_abbr=pinyin_abbr(name),
                    department_code=dept_id,
                    department_id=department_pks.get(dept_id),
                )
                for doc_id, (name, dept_id) in wanted.items()
            ],
            batch_size=BATCH,
            ignore_conflicts=True,
        )
        existing.update(
            Doctor.objects.filter(hospital=hospital, doctor_id__in=list(wanted)).values_list("doctor_id", "pk")
        )
    return existing


@transaction.atomic
def doctor_profile_apply(*, hospital: Hospital, record: dict) -> tuple[Doctor, Department]:
    """Create or update the doctor and department a schedule record describes (changeWorkNotice's
    NewWorkInfo carries DoctorNameAbbr, DoctorDesc, DoctorDegreeCode/Name, DoctorSkill and
    DepartmentNameAbbr). Elements left empty keep the stored value; a known doctor keeps the
    department DoctorInfo gave them, since a doctor may hold sessions in several departments.
    """
    department, created = Department.objects.select_for_update().get_or_create(
        hospital=hospital,
        department_id=record["DepartmentId"],
        defaults={"name": record["DepartmentName"], "is_outpatient": True},
    )
    name = record.get("DepartmentName") or department.name
    abbr = record.get("DepartmentNameAbbr") or (
        pinyin_abbr(name) if created or name != department.name or not department.name_abbr else department.name_abbr
    )
    if (name, abbr) != (department.name, department.name_abbr):
        department.name, department.name_abbr = name, abbr
        department.save(update_fields=["name", "name_abbr", "updated_at"])

    doctor, created = Doctor.objects.select_for_update().get_or_create(
        hospital=hospital,
        doctor_id=record["DoctorId"],
        defaults={"name": record["DoctorName"], "department_code": department.department_id, "department": department},
    )
    name = record.get("DoctorName") or doctor.name
    values = {
        "name": name,
        "name_abbr": record.get("DoctorNameAbbr")
        or (pinyin_abbr(name) if created or name != doctor.name or not doctor.name_abbr else doctor.name_abbr),
        "description": record.get("DoctorDesc") or doctor.description,
        "title_code": record.get("DoctorDegreeCode") or doctor.title_code,
        "title": record.get("DoctorDegreeName") or doctor.title,
        "skill": record.get("DoctorSkill") or doctor.skill,
    }
    if doctor.department_id is None:
        values.update(department=department, department_code=department.department_id)
    changed = [attr for attr, value in values.items() if getattr(doctor, attr) != value]
    if changed:
        for attr in changed:
            setattr(doctor, attr, values[attr])
        doctor.save(update_fields=[*changed, "updated_at"])
    return doctor, department
