"""5,000 doctors in one `DoctorInfo` call, against bulk-inserting the same rows directly.

Subject: the whole inbound pipeline (hardened read, validation from the description,
authorisation, TransactionId check, bulk upsert of departments and doctors, masked message log).
Baseline: COPY of the same rows into a temp table + INSERT … ON CONFLICT into regional_doctor.
"""

from __future__ import annotations

import itertools

from bench.common import measure, postgres_django, report

DOCTORS = 5000


def build_message(tx: str) -> str:
    from regional.messages.catalog import DOCTOR_INFO

    records = [
        {
            "DoctorId": f"D{i:05d}",
            "DoctorName": f"测试医生{i}",
            "DoctorSexCode": "1",
            "DoctorDegreeName": "主任医师",
            "DoctorSkill": "高血压、冠心病",
            "DepartmentId": f"K{i % 50:02d}",
            "DepartmentName": f"测试科室{i % 50}",
            "IsZJ": "1" if i % 7 == 0 else "0",
            "SeqNo": i,
        }
        for i in range(DOCTORS)
    ]
    return DOCTOR_INFO.request.render(
        {"TransactionId": tx, "HospitalNo": "B0001", "Count": DOCTORS, "DoctorInfo": records}
    )


def main() -> None:
    with postgres_django():
        from django.db import connection

        from regional import inbound
        from regional.auth import Caller
        from regional.messages.catalog import DOCTOR_INFO
        from regional.services import hospital_onboard

        hospital, _ = hospital_onboard(hospital_no="B0001", name="基准医院", secret="bench-secret-0123456789")
        caller = Caller("127.0.0.1", "basic", hospital)
        counter = itertools.count()
        messages: list[str] = []

        from regional.services import pinyin_abbr

        def next_message():
            messages[:] = [build_message(f"bench-{next(counter)}")]
            pinyin_abbr.cache_clear()  # every run pays for its pinyin, as a new hospital would

        def subject():
            outcome = inbound.process(DOCTOR_INFO, messages[0], caller=caller)
            assert outcome.ok, outcome.error

        subject_m = measure("DoctorInfo 5000 条（完整接口流程）", subject, setup=next_message)

        def baseline():
            rows = [(hospital.pk, f"D{i:05d}", f"测试医生{i}", f"K{i % 50:02d}", i % 7 == 0, i) for i in range(DOCTORS)]
            with connection.cursor() as cursor:
                raw = cursor.cursor
                raw.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS doc_in (hospital_id bigint, doctor_id text, name text,"
                    " department_code text, is_expert boolean, seq_no int) ON COMMIT DROP"
                )
                with raw.copy("COPY doc_in FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                raw.execute(
                    "INSERT INTO regional_doctor (hospital_id, doctor_id, name, name_abbr, sex_code, sex_name,"
                    " education_code, education_name, position_code, position_name, practice_year, skill, description,"
                    " title_code, title, department_code, is_expert, seq_no, is_deleted, updated_at)"
                    " SELECT hospital_id, doctor_id, name, '', '', '', '', '', '', '', '', '', '', '', '',"
                    " department_code, is_expert, seq_no, false, now() FROM doc_in"
                    " ON CONFLICT (hospital_id, doctor_id) DO UPDATE SET name = EXCLUDED.name,"
                    " department_code = EXCLUDED.department_code, is_expert = EXCLUDED.is_expert,"
                    " seq_no = EXCLUDED.seq_no, updated_at = now()"
                )

        from django.db import transaction

        def baseline_tx():
            with transaction.atomic():
                baseline()

        baseline_m = measure("同样5000行直接批量写入（COPY + INSERT … ON CONFLICT）", baseline_tx)
        report(
            "DoctorInfo 5000 医生同步",
            subject_m,
            baseline_m,
            {"records": DOCTORS, "message_bytes": len(messages[0].encode())},
        )


if __name__ == "__main__":
    main()
