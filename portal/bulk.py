"""Writing many rows at once, skipping those a unique constraint refuses.

A sweep over a backlog writes tens of thousands of cases, case events and
notifications in one go. ``bulk_create`` builds a model instance per row and
adapts every value in Python, which on PostgreSQL costs more than the
database's own work; there the rows are streamed with ``COPY`` into a
temporary table and moved with one ``INSERT … ON CONFLICT DO NOTHING``.
Other databases use ``bulk_create`` with the same outcome.
"""

import json
import threading

from django.db import connection, models, transaction
from django.utils import timezone

_names = threading.local()


def insert(model, fields: list[str], rows, *, stream=True) -> None:
    """Insert ``rows`` (tuples of values for ``fields``, named as on the
    model) into ``model``'s table. Fields left out take their model default;
    rows that break a unique constraint are skipped. ``stream=False`` is for
    a few rows, where a temporary table would cost more than it saves."""
    rows = list(rows)
    missing = [
        field.name
        for field in model._meta.concrete_fields
        if not (field.primary_key or field.null or field.has_default() or getattr(field, "auto_now", False))
        and field.name not in fields
        and field.attname not in fields
        and not field.empty_strings_allowed
    ]
    if missing:  # SQLite would skip such rows as silently as a conflict
        raise ValueError(f"{model.__name__} rows need {', '.join(missing)}")
    if not rows:
        return
    if connection.vendor != "postgresql" or not stream:
        model.objects.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows], ignore_conflicts=True, batch_size=1000
        )
        return
    given = [model._meta.get_field(name) for name in fields]
    now = timezone.now()
    rest = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and field.name not in fields and field.attname not in fields
    ]
    defaults = tuple(now if getattr(field, "auto_now", False) else _default(field) for field in rest)
    encoders = [_json_encoder(field) for field in given]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in (*given, *rest))
    table = connection.ops.quote_name(model._meta.db_table)
    scratch = f"_bulk_{model._meta.db_table}_{next_number()}"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
        with cursor.cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            for row in rows:
                values = tuple(encode(value) if encode else value for encode, value in zip(encoders, row, strict=True))
                copy.write_row(values + defaults)
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {scratch} ON CONFLICT DO NOTHING")
        cursor.execute(f"DROP TABLE {scratch}")


def next_number() -> int:
    _names.count = getattr(_names, "count", 0) + 1
    return _names.count


def _default(field):
    value = field.get_default()
    encode = _json_encoder(field)
    return encode(value) if encode else value


def _json_encoder(field):
    if not isinstance(field, models.JSONField):
        return None
    done = {}  # rows often share one value (a notification to each of a team): encode it once

    def encode(value):
        key = id(value)
        if key not in done:
            done[key] = (value, json.dumps(value, cls=field.encoder))  # holding value keeps its id unique
        return done[key][1]

    return encode
