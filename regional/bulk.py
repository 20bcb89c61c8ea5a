"""Set-based upserts: one statement per batch, whatever the number of records.

On PostgreSQL rows are streamed with COPY into a temporary table and merged with one
`INSERT … SELECT … ON CONFLICT DO UPDATE` (the fastest path measured in STACK-NOTES.md); elsewhere
Django's `bulk_create(update_conflicts=True)` does the same in batches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.db import connection, models
from django.utils import timezone

BATCH = 2000


def upsert(
    model: type[models.Model],
    objects: Iterable[models.Model],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
) -> int:
    """Insert or update `objects` (unsaved instances) by `unique_fields`; returns the row count."""
    objects = list(objects)
    if not objects:
        return 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            objects, batch_size=BATCH, update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields
        )
        return len(objects)
    return _copy_upsert(model, objects, unique_fields, update_fields)


def _copy_upsert(model, objects, unique_fields, update_fields) -> int:
    meta = model._meta
    now = timezone.now()
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    for obj in objects:
        for f in fields:
            # auto_now / auto_now_add and the hash of encrypted fields are filled by pre_save.
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                setattr(obj, f.attname, now)
    columns = [f.column for f in fields]
    unique_columns = [meta.get_field(name).column for name in unique_fields]
    update_columns = [meta.get_field(name).column for name in update_fields]
    temp = f"upsert_{uuid.uuid4().hex[:12]}"
    quote = connection.ops.quote_name
    column_list = ", ".join(quote(c) for c in columns)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(
            f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {column_list} FROM {quote(meta.db_table)} WITH NO DATA"
        )
        with raw.copy(f"COPY {temp} ({column_list}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
        assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update_columns)
        raw.execute(
            f"INSERT INTO {quote(meta.db_table)} ({column_list}) SELECT {column_list} FROM {temp} "
            f"ON CONFLICT ({', '.join(quote(c) for c in unique_columns)}) DO UPDATE SET {assignments}"
        )
        count = raw.rowcount
        raw.execute(f"DROP TABLE {temp}")
    return count


_UPDATES: dict[tuple[type, tuple[str, ...]], tuple[str, list]] = {}


def update_row(obj: models.Model, field_names: Sequence[str]) -> bool:
    """UPDATE `field_names` of `obj`'s row by primary key, as `save(update_fields=…)` writes them
    (auto_now filled, values prepared by each field), without the signals; False when no row has that
    key. The statement's text is built once per model and set of fields: Model.save() compiled it
    again each time, and for a one-row push that was the largest cost left."""
    key = (type(obj), tuple(field_names))
    known = _UPDATES.get(key)
    if known is None:
        meta = obj._meta
        fields = [meta.get_field(name) for name in field_names]
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        known = _UPDATES[key] = (
            f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s",
            fields,
        )
    sql, fields = known
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, obj.pk])
        return cursor.rowcount == 1
