"""Long finance work as tasks: a bill import's rows read are visible to another connection (the
page's) while the import's own transaction is still open, and a failed import leaves nothing."""

from __future__ import annotations

import io

import pytest
from django.db import connection

from reconciliation import services
from reconciliation.models import Statement, StatementImport, StatementLine, StatementSource
from reconciliation.services import imports, statements
from tests.base import bill, yesterday
from tests.factories import pay, source

pytestmark = pytest.mark.django_db(transaction=True)  # the import commits, as in the worker


def seen_by_another_connection(job_id: int) -> int:
    """What the import's page reads right now: a separate connection sees only committed rows."""
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute(f"SELECT rows_read FROM {StatementImport._meta.db_table} WHERE id = %s", [job_id])
            return cursor.fetchone()[0]
    finally:
        other.close()


class ImportProgressTests:
    def test_the_rows_read_are_committed_while_the_import_is_still_writing(self, hospital, monkeypatch):
        day = yesterday()
        for i in range(7):
            pay(hospital, day=day, amount=f"{10 + i}.00")
        content, _ = bill("wepay", day)
        # As the upload stored it, before the worker takes it (here the test runs the task's service).
        job = StatementImport.objects.create(
            source=source("wepay", adapter=StatementSource.UPLOAD),
            bill_date=day,
            kind=StatementImport.UPLOAD,
            filename="ALL.csv",
            content=content,
            size=len(content),
        )
        monkeypatch.setattr(statements, "PROGRESS_EVERY", 2)
        observed = []
        report = imports._Progress.__call__

        def watched(self, rows, phase=""):
            report(self, rows, phase)
            observed.append((connection.in_atomic_block, rows, seen_by_another_connection(self.job_id)))

        monkeypatch.setattr(imports._Progress, "__call__", watched)
        done = services.statement_import_execute(job=job)

        assert (done.status, done.rows_read, done.content) == ("done", 7, None)
        inside = [(rows, seen) for in_atomic, rows, seen in observed if in_atomic]
        assert inside == [(2, 2), (4, 4), (6, 6), (7, 7)]  # every count readable before the import commits
        assert StatementLine.objects.filter(statement=done.statement).count() == 7

    def test_a_bad_file_fails_the_import_with_its_line_and_writes_no_statement(self, hospital):
        day = yesterday()
        pay(hospital, day=day, amount="12.00")
        content, _ = bill("wepay", day)
        bad = content.decode().replace("`SUCCESS", "`PAYING", 1).encode()
        job = services.statement_upload_request(
            source=source("wepay", adapter=StatementSource.UPLOAD), bill_date=day, file=io.BytesIO(bad)
        )
        job.refresh_from_db()
        assert job.status == "failed" and "交易状态“PAYING”无法识别" in job.error
        assert job.phase == "已停止（对账单未导入，原有数据不变）" and job.statement is None
        assert not Statement.objects.exists() and not StatementLine.objects.exists()
