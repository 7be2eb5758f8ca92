"""Statements the ORM writes once per process and that are then sent with
new values.

Building and compiling a queryset costs the same however often it is run:
on a single API action (the order and its group locked, the live cases
asked about) it was a fifth of the request. A ``Kept`` statement is a
queryset written by a function of a few values, of a shape that does not
depend on them: the function is called with two sets of sample values, both
are compiled, and the statement is kept only if the two are the same text
with the samples, and only they, at the same places among the parameters.
Each call then fills those places with the values given. Anything else (a
different text, a sample not found, a value the adapter transforms, a value
of another type than its sample's at the call) goes to the ORM, so a kept
statement is the ORM's own statement for those values, not an imitation.
"""

import datetime
from functools import partial

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models.sql import UpdateQuery


class NotKeepable(Exception):
    """The queryset's text or parameters depend on the values themselves."""


class Kept:
    """A statement ``build(*values, *shape)`` writes, kept per database and
    per ``shape`` (what else, besides the values, changes the text: a kind
    of organisation, a set of rules); ``model`` is what ``instances`` makes
    of its rows.

    ``samples`` are two tuples of values of the types the real ones have,
    each differing from its counterpart and unlike any constant of the
    statement; or a function of the shape that gives them, where the shape
    decides which values there are.
    """

    def __init__(self, build, samples, model=None):
        if not callable(samples):
            _checked(samples)
        self.build = build
        self.samples = samples
        self.model = model
        self._kept = {}

    def _samples(self, shape):
        return _checked(self.samples(*shape)) if callable(self.samples) else self.samples

    def instances(self, values, shape=()) -> list:
        """The rows as instances of ``model``, the annotations as attributes."""
        filled = self._filled(values, shape)
        if filled is None:
            return list(self.build(*values, *shape))
        sql, params, _names, _converters = filled
        return list(self.model.objects.raw(sql, params))

    def rows(self, values, shape=()) -> list[dict]:
        """The rows of a ``values()`` queryset, as it gives them."""
        filled = self._filled(values, shape)
        if filled is None:
            return list(self.build(*values, *shape))
        sql, params, names, converters = filled
        connection = connections["default"]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            # As the ORM turns what the database gives into values (SQLite's
            # text into times and decimals, for one).
            rows = [list(row) for row in rows]
            for row in rows:
                for position, (functions, expression) in converters:
                    value = row[position]
                    for function in functions:
                        value = function(value, expression, connection)
                    row[position] = value
        return [dict(zip(names, row, strict=True)) for row in rows]

    def execute(self, values, shape=()) -> int:
        """Send a statement that returns no rows (an ``UPDATE``); the rows it changed."""
        filled = self._filled(values, shape)
        if filled is None:
            sql, params = self.build(*values, *shape).query.get_compiler("default").as_sql()
        else:
            sql, params = filled[:2]
        with connections["default"].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def statement(self, shape=()):
        """(text, parameters as (constant, index of a value) pairs, column
        names, the ORM's converters of the columns) for ``shape``; ``None``
        when it cannot be kept."""
        key = (connections["default"].vendor, shape)
        try:
            return self._kept[key]
        except KeyError:
            pass
        try:
            kept = self._make(shape)
        except NotKeepable:
            kept = None
        self._kept[key] = kept
        return kept

    def _filled(self, values, shape):
        # A value of another type (None above all: ``IS NULL``) may make
        # another statement; the ORM writes that one.
        kept = self.statement(shape)
        if kept is None:
            return None
        sql, slots, names, converters, samples = kept
        if not all(_same_type(value, sample) for value, sample in zip(values, samples, strict=True)):
            return None
        params = [constant if index is None else wrap(values[index]) for constant, index, wrap in slots]
        return sql, params, names, converters

    def _make(self, shape):
        first, second = self._samples(shape)
        (sql, params), names, converters = self._compile(first, shape)
        (other_sql, other_params), _names, _converters = self._compile(second, shape)
        if sql != other_sql or len(params) != len(other_params):
            raise NotKeepable("the statement's text depends on its values")
        slots = []
        for a, b in zip(params, other_params, strict=True):
            if a == b:
                if any(a == sample for sample in (*first, *second)):
                    raise NotKeepable(f"a constant of the statement equals a sample: {a!r}")
                slots.append((a, None, None))
                continue
            index = next((i for i, (x, y) in enumerate(zip(first, second, strict=True)) if x == a and y == b), None)
            if index is None:
                raise NotKeepable(f"a parameter is not a value as given: {a!r}")
            # The value as given, or wrapped as the backend wraps it (an
            # integer as psycopg's Int4): a subclass holding the same value.
            wrap = type(a)
            if not (wrap is type(first[index]) or (isinstance(a, type(first[index])) and type(b) is wrap)):
                raise NotKeepable(f"a parameter is not a value as given: {a!r}")
            slots.append((None, index, _as_given if wrap is type(first[index]) else wrap))
        return sql, slots, names, converters, first

    def _compile(self, values, shape):
        query = self.build(*values, *shape).query
        # The names a ``values()`` queryset gives its columns.
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        compiler = query.get_compiler("default")
        try:
            compiled = compiler.as_sql()
        except EmptyResultSet:  # a scope that holds nothing: the ORM answers it
            raise NotKeepable("the statement reads nothing") from None
        columns = [column for column, _sql, _alias in compiler.select or ()]
        return compiled, names, sorted(compiler.get_converters(columns).items())


def _as_given(value):
    return value


def _checked(samples):
    first, second = samples
    if len(first) != len(second) or any(a == b for a, b in zip(first, second, strict=True)):
        raise ValueError("two sets of samples, each value differing from its counterpart")
    return samples


def _same_type(value, sample) -> bool:
    # A choice of a text field is text: the adapter sends it as its sample.
    return type(value) is type(sample) or (type(sample) is str and isinstance(value, str))


def updating(model) -> Kept:
    """A kept ``UPDATE`` of one ``model`` row by primary key, what
    ``save(update_fields=names)`` sends: ``execute((pk, *values), (names,))``,
    kept per tuple of field names."""
    return Kept(partial(_update_of, model), partial(_update_samples, model))


class _Update:
    def __init__(self, query):
        self.query = query


def _update_of(model, pk, *values_and_names):
    *values, names = values_and_names
    query = model.objects.filter(pk=pk).query.chain(UpdateQuery)
    query.add_update_fields(
        [(model._meta.get_field(name), None, value) for name, value in zip(names, values, strict=True)]
    )
    return _Update(query)


def _update_samples(model, names):
    # Samples of each field's type; a field of another type (a decimal, a
    # date) gets text, which the ORM transforms, so that shape is its to send.
    first, second = [-7301], [-7302]
    for name in names:
        kind = model._meta.get_field(name).get_internal_type()
        if kind == "DateTimeField":
            pair = (
                datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
                datetime.datetime(2002, 3, 4, 5, 6, 7, tzinfo=datetime.UTC),
            )
        elif kind == "BooleanField":
            pair = (False, True)
        elif kind in ("IntegerField", "PositiveIntegerField", "BigIntegerField"):
            pair = (-7401 - len(first), -7501 - len(first))
        else:
            pair = (f"kept-{name}-a", f"kept-{name}-b")
        first.append(pair[0])
        second.append(pair[1])
    return tuple(first), tuple(second)
