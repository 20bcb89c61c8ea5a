"""The import of monthly outpatient visit totals (门诊诊疗人次) from the hospitals' Excel files: a
malformed file is refused whole, with the row and column of each fault named, and writes nothing."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from supervision.models import OutpatientVisits
from supervision.services import VisitsImportRefused, visits_import

pytestmark = pytest.mark.django_db

HEADER = ["医院编号", "月份", "门诊诊疗总人次", "急诊人次", "平台外预约诊疗人次"]


def xlsx(*rows, header=HEADER) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
def hospitals(make_hospital):
    return make_hospital("S001", "测试市第一人民医院"), make_hospital("S002", "测试市第二医院")


class VisitsImportTests:
    def test_a_valid_file_writes_one_row_per_hospital_and_month(self, hospitals):
        content = xlsx(("S001", "2026-11", 12000, 1500, 300), ("S002", dt.datetime(2026, 11, 1), 8000, 900, None))
        result = visits_import(file=io.BytesIO(content), filename="11月门诊人次.xlsx")
        assert (result.created, result.updated, result.months) == (2, 0, ["2026-11"])
        rows = {(v.hospital.hospital_no, v.month, v.total_visits, v.emergency_visits, v.other_appointment_visits)
                for v in OutpatientVisits.objects.select_related("hospital")}  # fmt: skip
        assert rows == {("S001", dt.date(2026, 11, 1), 12000, 1500, 300), ("S002", dt.date(2026, 11, 1), 8000, 900, 0)}
        # The same month again replaces the figures.
        again = visits_import(file=io.BytesIO(xlsx(("S001", "2026年11月", 12100, 1500, 300))))
        assert (again.created, again.updated) == (0, 1)
        assert OutpatientVisits.objects.get(hospital__hospital_no="S001").total_visits == 12100

    def test_a_malformed_file_is_refused_with_row_and_column_named_and_nothing_written(self, hospitals):
        content = xlsx(
            ("S001", "2026-11", 12000, 1500, 0),  # valid, but the file as a whole is refused
            ("S002", "2026-11", "一万", 900, 0),
            ("S009", "2026-13", 100, 200, 0),
        )
        with pytest.raises(VisitsImportRefused) as refused:
            visits_import(file=io.BytesIO(content))
        assert refused.value.problems == [
            "第3行 C列（门诊诊疗总人次）：应为非负整数，实际为“一万”",
            "第4行 A列（医院编号）：医院“S009”未在平台登记",
            "第4行 B列（月份）：应为年月（例如2026-11），实际为“2026-13”",
            "第4行 D列（急诊人次）：急诊人次（200）不能大于门诊诊疗总人次（100）",
        ]
        assert "未写入任何数据" in refused.value.message
        assert not OutpatientVisits.objects.exists()

    def test_a_wrong_header_or_not_an_excel_file_is_refused(self, hospitals):
        wrong = xlsx(
            ("S001", "2026-11", 1, 0, 0), header=["医院编号", "月份", "总人次", "急诊人次", "平台外预约诊疗人次"]
        )
        with pytest.raises(VisitsImportRefused) as refused:
            visits_import(file=io.BytesIO(wrong))
        assert refused.value.problems == ["第1行 C列：表头应为“门诊诊疗总人次”，实际为“总人次”"]
        with pytest.raises(VisitsImportRefused) as refused:
            visits_import(file=io.BytesIO("医院编号,月份\n".encode()))
        assert refused.value.problems[0].startswith("不是有效的Excel（.xlsx）文件")
        assert not OutpatientVisits.objects.exists()

    def test_staff_import_through_the_admin_and_see_the_faults(self, hospitals, admin_client):
        url = "/admin/supervision/outpatientvisits/import/"
        bad = SimpleUploadedFile("bad.xlsx", xlsx(("S001", "2026-11", 100, "", 0)))
        page = admin_client.post(url, {"file": bad}).content.decode()
        assert "文件未导入，未写入任何数据" in page and "第2行 D列（急诊人次）：应为非负整数，实际为“”" in page
        assert not OutpatientVisits.objects.exists()
        good = SimpleUploadedFile("good.xlsx", xlsx(("S001", "2026-11", 100, 10, 0)))
        response = admin_client.post(url, {"file": good}, follow=True)
        assert "已导入：新增1条，更新0条（2026-11）" in response.content.decode()
        assert OutpatientVisits.objects.get().total_visits == 100
