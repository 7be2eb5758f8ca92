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

from django.core.exceptions import EmptyResultSet
from django.db import connections


class NotKeepable(Exception):
    """The queryset's text or parameters depend on the values themselves."""


class Kept:
    """A statement ``build(*values, *shape)`` writes, kept per database and
    per ``shape`` (what else, besides the values, changes the text: a kind
    of organisation, a set of rules); ``model`` is what ``instances`` makes
    of its rows.

    ``samples`` are two tuples of values of the types the real ones have,
    each differing from its counterpart and unlike any constant of the
    statement.
    """

    def __init__(self, build, samples, model=None):
        first, second = samples
        if len(first) != len(second) or any(a == b for a, b in zip(first, second, strict=True)):
            raise ValueError("two sets of samples, each value differing from its counterpart")
        self.build = build
        self.samples = samples
        self.model = model
        self._kept = {}

    def instances(self, values, shape=()) -> list:
        """The rows as instances of ``model``, the annotations as attributes."""
        filled = self._filled(values, shape)
        if filled is None:
            return list(self.build(*values, *shape))
        sql, params, _names = filled
        return list(self.model.objects.raw(sql, params))

    def rows(self, values, shape=()) -> list[dict]:
        """The rows of a ``values()`` queryset, as it gives them."""
        filled = self._filled(values, shape)
        if filled is None:
            return list(self.build(*values, *shape))
        sql, params, names = filled
        with connections["default"].cursor() as cursor:
            cursor.execute(sql, params)
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def statement(self, shape=()):
        """(text, parameters as (constant, index of a value) pairs, column
        names) for ``shape``; ``None`` when it cannot be kept."""
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

    def clear(self):
        self._kept.clear()

    def _filled(self, values, shape):
        # A value of another type (None above all: ``IS NULL``) may make
        # another statement; the ORM writes that one.
        if any(type(value) is not type(sample) for value, sample in zip(values, self.samples[0], strict=True)):
            return None
        kept = self.statement(shape)
        if kept is None:
            return None
        sql, slots, names = kept
        return sql, [constant if index is None else values[index] for constant, index in slots], names

    def _make(self, shape):
        first, second = self.samples
        (sql, params), names = self._compile(first, shape)
        (other_sql, other_params), _names = self._compile(second, shape)
        if sql != other_sql or len(params) != len(other_params):
            raise NotKeepable("the statement's text depends on its values")
        slots = []
        for a, b in zip(params, other_params, strict=True):
            if a == b:
                if any(a == sample for sample in (*first, *second)):
                    raise NotKeepable(f"a constant of the statement equals a sample: {a!r}")
                slots.append((a, None))
                continue
            index = next((i for i, (x, y) in enumerate(zip(first, second, strict=True)) if x == a and y == b), None)
            if index is None or type(a) is not type(first[index]):
                raise NotKeepable(f"a parameter is not a value as given: {a!r}")
            slots.append((None, index))
        return sql, slots, names

    def _compile(self, values, shape):
        query = self.build(*values, *shape).query
        # The names a ``values()`` queryset gives its columns.
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        try:
            return query.get_compiler("default").as_sql(), names
        except EmptyResultSet:  # a scope that holds nothing: the ORM answers it
            raise NotKeepable("the statement reads nothing") from None
