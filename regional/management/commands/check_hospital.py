"""Onboarding conformance check of one hospital's hospital-side interface (3.1–3.8, 6.1–6.2).

Every operation is called at the hospital's configured endpoint through the platform's own client
(regional.hospital_client), with valid messages (a whole lock → unlock → lock → pay → cancel
round on a session the hospital names for testing) and invalid ones (a required element left
empty, unknown ids, text that is not XML), which must be refused with ResultCode ≠ 0 and an
ErrorMsg, never a SOAP fault or an HTTP error. The test patient is fictitious.

Exit status is non-zero when any check fails.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from django.core.management.base import BaseCommand, CommandError

from regional import hospital_client
from regional.conformance import DEFAULT_PATIENT, FAIL, PASS, SKIP, Conformance, Row, fictitious_patient
from regional.models import Hospital


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


class Command(BaseCommand):
    help = "医院接入一致性检查：用合法和非法报文调用该医院的全部医院端接口，输出通过/失败表；有失败时退出码非0"

    def add_arguments(self, parser):
        parser.add_argument("hospital_no", metavar="HOSPITALNO")
        parser.add_argument("--work-id", help="医院提供的测试排班号（用于锁号、支付、退号全流程）")
        parser.add_argument("--work-date", type=dt.date.fromisoformat, help="测试排班的出诊日期 yyyy-mm-dd")
        parser.add_argument("--timeout", type=float, help="每次调用的超时秒数（默认 HOSPITAL_CALL_TIMEOUT）")
        parser.add_argument("--patient-name", default=DEFAULT_PATIENT["Name"])
        parser.add_argument("--patient-id", default=DEFAULT_PATIENT["IDCode"], help="测试患者身份证号（虚构）")
        parser.add_argument("--patient-phone", default=DEFAULT_PATIENT["TelephoneNo"])

    def handle(self, *args, hospital_no, work_id, work_date, timeout, patient_name, patient_id, patient_phone, **opts):
        hospital = Hospital.objects.filter(hospital_no=hospital_no).first()
        if hospital is None:
            raise CommandError(f"医院{hospital_no}未在平台登记")
        if not hospital.endpoint_url and not hospital.wsdl_url:
            raise CommandError(f"医院{hospital_no}未配置医院端接口地址（endpoint_url 或 wsdl_url）")
        # A conformance check is a deliberate operator action: start from a closed circuit.
        hospital_client.circuit_for(hospital).reset()
        patient = fictitious_patient(name=patient_name, id_code=patient_id, phone=patient_phone)
        self.stdout.write(f"接入检查：{hospital}  接口 {hospital.endpoint_url or hospital.wsdl_url}")
        conformance = Conformance(hospital, work_id=work_id, work_date=work_date, patient=patient, timeout=timeout)
        try:
            rows = conformance.run()
        finally:
            # The check's own failures must not hold back the hospital's real traffic.
            hospital_client.circuit_for(hospital).reset()
        self.print_table(rows)
        for advice in conformance.advice:
            self.stdout.write(self.style.WARNING(f"配置建议：{advice}"))
        failed = [r for r in rows if r.result == FAIL]
        skipped = [r for r in rows if r.result == SKIP]
        summary = (
            f"共{len(rows)}项：通过{len(rows) - len(failed) - len(skipped)}，失败{len(failed)}，跳过{len(skipped)}"
        )
        if failed:
            raise CommandError(f"接入检查未通过。{summary}")
        if skipped:
            self.stdout.write(self.style.WARNING(f"{summary}（有跳过项，检查不完整）"))
        else:
            self.stdout.write(self.style.SUCCESS(f"接入检查通过。{summary}"))

    def print_table(self, rows: list[Row]) -> None:
        headers = ("序号", "接口", "用例", "结果", "耗时ms", "说明")
        table = [(str(i), r.operation, r.case, r.result, str(r.ms), r.note) for i, r in enumerate(rows, start=1)]
        widths = [max(_width(str(row[c])) for row in [headers, *table]) for c in range(len(headers) - 1)]
        line = "  ".join(_pad(h, w) for h, w in zip(headers[:-1], widths, strict=True)) + "  " + headers[-1]
        self.stdout.write(line)
        self.stdout.write("-" * min(_width(line) + 20, 160))
        for row in table:
            text = "  ".join(_pad(v, w) for v, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            style = {PASS: self.style.SUCCESS, FAIL: self.style.ERROR, SKIP: self.style.WARNING}[row[3]]
            self.stdout.write(style(text))
