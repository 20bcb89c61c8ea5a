"""Bill imports as background work: the request stores the upload (or the wish to fetch) and queues
a task; the worker imports, recording the rows read as it goes, and the import's page follows it."""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import BinaryIO

from django.db import connection, transaction
from django.utils import timezone

from reconciliation.models import StatementImport, StatementSource
from reconciliation.services.statements import statement_fetch, statement_import
from regional.audit import audit_record
from regional.errors import DomainError

logger = logging.getLogger("reconciliation")

Job = StatementImport


def statement_upload_request(
    *, source: StatementSource, bill_date: dt.date, file: BinaryIO, filename: str = "", user=None
) -> StatementImport:
    """Keep an uploaded bill and queue its import; a worker imports it after this transaction commits."""
    file.seek(0)
    content = file.read()
    if not content:
        raise DomainError("上传的文件为空")
    return _request(source=source, bill_date=bill_date, kind=Job.UPLOAD, filename=filename, content=content, user=user)


def statement_fetch_request(*, source: StatementSource, bill_date: dt.date, user=None) -> StatementImport:
    """Queue fetching a day's bill through the source's adapter and importing it."""
    if source.adapter == StatementSource.UPLOAD:
        raise DomainError(f"{source.name}只接受人工上传对账单")
    return _request(source=source, bill_date=bill_date, kind=Job.FETCH, filename="", content=None, user=user)


def _request(*, source, bill_date, kind, filename, content, user) -> StatementImport:
    with transaction.atomic():
        job = Job.objects.create(
            source=source,
            bill_date=bill_date,
            kind=kind,
            filename=filename[:255],
            content=content,
            size=len(content or b""),
            phase="排队等待导入",
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        audit_record(
            action="发起对账单导入",
            obj=job,
            after={"来源": str(source), "账单日期": f"{bill_date:%Y-%m-%d}", "方式": job.get_kind_display()},
            user=user,
        )
        from reconciliation import tasks

        transaction.on_commit(lambda: tasks.import_statement.delay(job.pk))
    return job


def statement_import_execute(*, job: StatementImport) -> StatementImport:
    """Run a queued import once (a redelivered task finds it taken and returns it as it is)."""
    taken = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        phase="正在从渠道下载对账单" if job.kind == Job.FETCH else "正在读取文件",
    )
    job.refresh_from_db()
    if not taken:
        return job
    progress = _Progress(job.pk)
    try:
        if job.kind == Job.FETCH:
            statement = statement_fetch(
                source=job.source, bill_date=job.bill_date, user=job.created_by, progress=progress
            )
            replaced = False
        else:
            progress(0, phase="正在校验并写入明细")
            statement, replaced = statement_import(
                source=job.source,
                bill_date=job.bill_date,
                file=io.BytesIO(bytes(job.content)),
                filename=job.filename,
                user=job.created_by,
                progress=progress,
            )
    except Exception as exc:
        message = exc.message if isinstance(exc, DomainError) else f"内部错误（{type(exc).__name__}）"
        if not isinstance(exc, DomainError):
            logger.exception("statement import %s failed", job.pk)
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            phase="已停止（对账单未导入，原有数据不变）",
            error=message[:500],
        )
        job.refresh_from_db()
        if not isinstance(exc, DomainError):
            raise
        return job
    finally:
        progress.close()
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.DONE,
        finished_at=timezone.now(),
        phase="已完成",
        statement=statement,
        replaced=replaced,
        rows_read=statement.line_count,
        filename=job.filename or statement.filename,
        content=None,  # imported: the statement and its lines hold it now
    )
    job.refresh_from_db()
    return job


class _Progress:
    """Writes an import's rows read so that its page sees them while the import's own transaction is
    still open: on PostgreSQL through a second connection (autocommit); elsewhere (SQLite, one
    writer at a time) only between transactions, so the count appears when the rows are written."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.side = None

    def __call__(self, rows: int, phase: str = "") -> None:
        fields = {"rows_read": rows, **({"phase": phase} if phase else {})}
        if not connection.in_atomic_block:
            Job.objects.filter(pk=self.job_id).update(**fields)
            return
        if connection.vendor != "postgresql":
            return
        if self.side is None:
            self.side = connection.copy()
        table = connection.ops.quote_name(Job._meta.db_table)
        sets = ", ".join(f"{connection.ops.quote_name(name)} = %s" for name in fields)
        with self.side.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {sets} WHERE id = %s", [*fields.values(), self.job_id])

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None
