"""Writing many rows at once, skipping those a unique constraint refuses.

A sweep over a backlog writes tens of thousands of cases, case events and
notifications in one go. ``bulk_create`` builds a model instance per row and
adapts every value in Python, which on PostgreSQL costs more than the
database's own work; there the rows are streamed with ``COPY`` into a
temporary table and moved with one ``INSERT … SELECT … ON CONFLICT DO
NOTHING``, which can also leave out rows a condition names, hand back the
rows it wrote (``RETURNING``) and give each of them a row of another table
(a case its first event), so that nothing has to be read again. Other
databases stage the rows with ordinary inserts and run the same statement,
or use ``bulk_create`` when nothing needs to come back.
"""

import datetime
import json
import threading
import time
from contextlib import contextmanager
from itertools import chain

from django.db import connection, models, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

_names = threading.local()


def insert(model, fields: list[str], rows, *, stream=True, returning=(), unless=None, then=None) -> list[tuple]:
    """Insert ``rows`` (tuples of values for ``fields``, named as on the
    model) into ``model``'s table. Fields left out take their model default;
    rows that break a unique constraint are skipped. ``rows`` may be a
    generator: streamed, they are not all held at once. ``stream=False`` is
    for a few rows with nothing to come back, where a temporary table would
    cost more than it saves.

    ``unless`` is ``(sql, params)``: a condition on the new row, called
    ``staged`` in it (``staged.subject``), that leaves the row out.
    ``returning`` names fields whose stored values come back, one tuple per
    row written (as the database gives them: ids, codes), in no promised
    order; without it nothing comes back. ``then`` is ``(model, key,
    values)``: each row written gets one row of that model, its foreign key
    ``key`` pointing at it, its other fields ``values`` or their defaults
    (``insert_each``).
    """
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
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return []
    rows = chain([first], rows)
    postgres = connection.vendor == "postgresql"
    if not returning and unless is None and then is None and not (postgres and stream):
        model.objects.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows], ignore_conflicts=True, batch_size=1000
        )
        return []
    quote = connection.ops.quote_name
    given = [model._meta.get_field(name) for name in fields]
    staged = ", ".join(quote(field.column) for field in given)
    rest, marks, params = _the_rest(model, given, {})
    columns = ", ".join(quote(field.column) for field in (*given, *rest))
    table = quote(model._meta.db_table)
    scratch = f"_bulk_{model._meta.db_table}_{next_number()}"
    condition, condition_params = unless if unless is not None else ("false", [])
    pk = model._meta.pk.column
    back = [model._meta.get_field(name).column for name in returning]
    if then is not None and pk not in back:
        back.insert(0, pk)
    # The WHERE clause is always written: SQLite reads ``ON CONFLICT`` right
    # after ``FROM x`` as the start of a join.
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {', '.join([staged, *marks])} FROM {scratch} AS staged "
        f"WHERE NOT ({condition}) ON CONFLICT DO NOTHING"
    )
    params = [*params, *condition_params]
    if back:
        sql += " RETURNING " + ", ".join(quote(column) for column in back)
    if then is not None and postgres:
        # One statement: the rows, then each one's row of ``then`` from what came back.
        child, child_params = _insert_each_sql(*then, keys=f"SELECT {quote(pk)}, {quote(pk)} FROM written")
        sql = f"WITH written AS ({sql}), child AS ({child}) SELECT {', '.join(map(quote, back))} FROM written"
        params += child_params
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres:
            _copy(cursor, scratch, table, staged, given, rows)
        else:
            _stage(cursor, scratch, table, staged, given, rows)
        cursor.execute(sql, params)
        written = [tuple(row) for row in cursor.fetchall()] if back else []
        cursor.execute(f"DROP TABLE {scratch}")
        if then is not None and not postgres:
            child_model, key, values = then
            at = back.index(pk)
            insert_each(child_model, key, sorted(row[at] for row in written), **values)
    if len(back) > len(returning):
        written = [row[1:] for row in written]
    return written


def append(model, fields: list[str], rows) -> None:
    """Add ``rows`` (tuples of values for ``fields``) to ``model``'s table,
    all or none: a row a constraint refuses fails the statement
    (``IntegrityError``), and nothing comes back. ``fields`` name every
    column but the key and those set on saving (``auto_now``,
    ``auto_now_add``), which take the time of writing.

    On PostgreSQL the rows are streamed straight into the table with
    ``COPY``: a workflow set's hundred events in a third of
    ``bulk_create``'s time, which sends each column as an array literal
    with every quote in the JSON escaped in Python. Elsewhere
    ``bulk_create``."""
    given = [model._meta.get_field(name) for name in fields]
    stamped = [
        f for f in model._meta.concrete_fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    left = [f.name for f in model._meta.concrete_fields if not (f.primary_key or f in given or f in stamped)]
    if left:
        raise ValueError(f"{model.__name__} rows need {', '.join(left)}")
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(fields, row, strict=True))) for row in rows])
        return
    stamped = [f for f in stamped if f not in given]
    now = [timezone.now()] * len(stamped)
    encoders = [(i, encode) for i, field in enumerate([*given, *stamped]) if (encode := _encoder(field))]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in [*given, *stamped])
    table = connection.ops.quote_name(model._meta.db_table)
    copying = f"COPY {table} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, connection.wrap_database_errors, _copying(cursor, copying) as copy:
        for row in rows:
            row = [*row, *now]
            for i, encode in encoders:
                row[i] = encode(row[i])
            copy.write_row(row)


def _the_rest(model, given, values):
    """The fields of ``model`` other than its key and ``given``, and for each
    a placeholder and its parameter: its value in ``values``, or its model
    default (an ``auto_now`` field: now). On PostgreSQL each placeholder is
    cast to its column's type, so that none is read as text."""
    now = timezone.now()
    rest, marks, params = [], [], []
    postgres = connection.vendor == "postgresql"
    for field in model._meta.concrete_fields:
        if field.primary_key or field in given:
            continue
        if field.name in values:
            value = values[field.name]
        elif getattr(field, "auto_now", False):
            value = now
        else:
            value = field.get_default()
        rest.append(field)
        marks.append(f"CAST(%s AS {field.db_type(connection)})" if postgres else "%s")
        params.append(field.get_db_prep_save(value, connection))
    return rest, marks, params


def _copy(cursor, scratch, table, columns, given, rows):
    """PostgreSQL: the rows into a new temporary table, streamed."""
    # JSON and moments are sent as their text; every other value as it is.
    encoders = [(i, encode) for i, field in enumerate(given) if (encode := _encoder(field))]
    cursor.execute(f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
    with _copying(cursor, f"COPY {scratch} ({columns}) FROM STDIN") as copy:
        for row in rows:
            if len(row) != len(given):
                raise ValueError(f"a row of {len(row)} values for {len(given)} fields")
            if encoders:
                row = list(row)
                for i, encode in encoders:
                    row[i] = encode(row[i])
            copy.write_row(row)


@contextmanager
def _copying(cursor, sql):
    """The driver's ``COPY``, logged as a statement where Django logs them
    (``connection.queries``, what query counts read)."""
    started = time.monotonic()
    with cursor.cursor.copy(sql) as copy:
        yield copy
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def _stage(cursor, scratch, table, columns, given, rows):
    """Any database: the rows into a new temporary table, one insert each."""
    drop = " ON COMMIT DROP" if connection.vendor == "postgresql" else ""
    cursor.execute(f"CREATE TEMPORARY TABLE {scratch}{drop} AS SELECT {columns} FROM {table} WHERE 1 = 0")
    marks = ", ".join(["%s"] * len(given))
    cursor.executemany(
        f"INSERT INTO {scratch} ({columns}) VALUES ({marks})",
        [
            tuple(field.get_db_prep_save(value, connection) for field, value in zip(given, row, strict=True))
            for row in rows
        ],
    )


def insert_each(model, key: str, ids, **values) -> None:
    """One row of ``model`` per id of ``ids``, in their order: ``key`` (a
    foreign key, by field name) is the id, the other fields are ``values`` or
    their model default. On PostgreSQL one ``INSERT … SELECT`` over the ids,
    sent as one array; elsewhere ``insert``."""
    ids = [int(pk) for pk in ids]
    if not ids:
        return
    if connection.vendor != "postgresql":
        names = [model._meta.get_field(key).attname, *values]
        insert(model, names, [(pk, *values.values()) for pk in ids], stream=False)
        return
    sql, params = _insert_each_sql(model, key, values, keys="SELECT * FROM unnest(%s::bigint[]) WITH ORDINALITY")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, ids])


def _insert_each_sql(model, key, values, *, keys):
    """PostgreSQL: an ``INSERT … SELECT`` of one row of ``model`` per key of
    the query ``keys`` (two columns: the key, then what orders the rows), and
    its parameters, those of ``keys`` not included."""
    quote = connection.ops.quote_name
    keyed = model._meta.get_field(key)
    rest, marks, params = _the_rest(model, [keyed], values)
    columns = ", ".join(quote(field.column) for field in (keyed, *rest))
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "
        f"SELECT k, {', '.join(marks)} FROM ({keys}) AS keys(k, n) ORDER BY n"
    )
    return sql, params


def among(ids) -> RawSQL:
    """The ids as a subquery of one column, ``id``, for ``pk__in`` or inside
    SQL (its ``sql`` and ``params``): one parameter however many they are (an
    array on PostgreSQL, a JSON list on SQLite), rather than one per id."""
    ids = [int(pk) for pk in ids]
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[]) AS id", [ids])
    return RawSQL("SELECT value AS id FROM json_each(%s)", [json.dumps(ids)])


def next_number() -> int:
    _names.count = getattr(_names, "count", 0) + 1
    return _names.count


def _encoder(field):
    """How a value of ``field`` is written for ``COPY``, when not as it is:
    JSON as its text; a moment in ISO 8601, which the database reads as it
    is and which is quicker to write than through the driver."""
    if isinstance(field, models.JSONField):

        def text(value):
            return json.dumps(value, cls=field.encoder)

    elif isinstance(field, models.DateTimeField):

        def text(value):
            return value.isoformat() if isinstance(value, datetime.datetime) else value

    else:
        return None
    done = {}  # rows often share one value (a notification to each of a team): encode it once

    def encode(value):
        key = id(value)
        if key not in done:
            done[key] = (value, text(value))  # holding value keeps its id unique
        return done[key][1]

    return encode
