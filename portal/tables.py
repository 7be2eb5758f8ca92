"""The base of the project's tables: django-tables2, with what it decides for
every cell decided once for each column.

For every cell django-tables2 reads its render method's parameters
(``utils.call_with_appropriate``, one ``inspect.signature`` a cell), finds the
cell's column by walking the table's sequence, reverses a linkified cell's
URL, and for every row reads the parameters of each ``row_attrs`` callable.
None of that changes from one row to the next, and on a page of a hundred
rows it was about a third of the render (bench/tables.py). ``Table`` puts its
own rows (``BoundRows``/``BoundRow``) in place of django-tables2's: the same
``_get_and_render_with``, the same arguments and the same markup, with each
column's callables and link worked out once for the table (``Plan``), that
is once a request, as every view builds its table afresh.

django-tables2's template renders the rows as before; its header, sorting
and paging are untouched. The methods overridden here are django-tables2's
own, not its documented API: tests/portal/test_table_rendering.py holds
every list page's tables against django-tables2's own rows, so an upgrade
that changes what they do shows there.
"""

import re

import django_tables2 as tables
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django_tables2 import rows
from django_tables2.columns.base import LinkTransform
from django_tables2.utils import Accessor, AttributeDict, computed_values, signature


class Call:
    """A callable django-tables2 calls with "the arguments it accepts", with
    those read once: what ``call_with_appropriate`` does on every call."""

    __slots__ = ("fn", "names")

    def __init__(self, fn):
        self.fn = fn
        names, catch_all = signature(fn)
        # A ``**kwargs`` catch-all is given every argument there is.
        self.names = None if catch_all else names

    def __call__(self, kwargs):
        if self.names is None:
            return self.fn(**kwargs)
        # As django-tables2: a callable that wants an argument not on offer
        # is not called at all.
        if any(name not in kwargs for name in self.names):
            return None
        return self.fn(**{name: kwargs[name] for name in self.names})


class Values:
    """``utils.computed_values`` of a dict of attributes (``row_attrs``, a
    link's ``attrs``), with its callables' arguments read once."""

    __slots__ = ("items",)

    def __init__(self, values):
        self.items = [
            (key, Call(value) if callable(value) else Values(value) if isinstance(value, dict) else value)
            for key, value in values.items()
        ]

    def __call__(self, kwargs):
        result = {}
        for key, value in self.items:
            if isinstance(value, Call):
                value = value(kwargs)
                # What a callable answers is computed too, as django-tables2 does.
                if isinstance(value, dict):
                    value = computed_values(value, kwargs=kwargs)
            elif isinstance(value, Values):
                value = value(kwargs)
            result[key] = value
        return result


class UrlPattern:
    """``reverse(viewname, kwargs={name: value})`` for one view, as the URL
    reversed once for a stand-in value with the cell's value put in its place.

    Only where that gives what ``reverse()`` would: for a value of letters,
    digits, ``-`` and ``_`` (all digits, or not: an ``<int:…>`` route takes
    only digits), which every built-in converter but ``uuid`` passes through
    unchanged and which ``reverse()`` does not quote; and only when two
    different stand-ins both come back unchanged, exactly once, in the same
    place. Any other value, or any other route, goes to ``reverse()`` itself,
    which also refuses what it refused before."""

    SAFE = re.compile(r"[A-Za-z0-9_-]+\Z")
    # Two stand-ins of each kind, unlike anything in the project's routes.
    STAND_INS = {True: ("8301946257", "5729164083"), False: ("zQ8-x_W3kP", "Jm4_vT-9rY")}

    def __init__(self, viewname, name):
        self.viewname, self.name = viewname, name
        self.patterns = {}

    def _pattern(self, digits):
        first, second = self.STAND_INS[digits]
        try:
            url = reverse(self.viewname, kwargs={self.name: first})
            check = reverse(self.viewname, kwargs={self.name: second})
        except NoReverseMatch:
            return None
        if url.count(first) != 1:
            return None
        before, after = url.split(first)
        return (before, after) if check == before + second + after else None

    def __call__(self, value):
        text = str(value)
        if not self.SAFE.match(text):
            return reverse(self.viewname, kwargs={self.name: value})
        digits = text.isdigit()
        if digits not in self.patterns:
            self.patterns[digits] = self._pattern(digits)
        pattern = self.patterns[digits]
        if pattern is None:
            return reverse(self.viewname, kwargs={self.name: value})
        return pattern[0] + text + pattern[1]


class Link:
    """A column's ``linkify``: django-tables2's ``LinkTransform`` with its
    callables' arguments read once and, for a view with one keyword argument
    taken from the record (``linkify=("orders:detail", {"order_no": A("order_no")})``),
    its URL built from a ``UrlPattern``."""

    def __init__(self, link):
        self.link = link
        self.attrs = Values(link.attrs or {})
        self.href = self._href(link)

    def _href(self, link):
        if link.url and callable(link.url):
            return Call(link.url)
        reverse_args = link.reverse_args
        if reverse_args.get("viewname") is None:
            # ``linkify=True``: the record's ``get_absolute_url()``.
            return lambda kwargs: link.compose_url(**kwargs)
        viewname, kwargs = reverse_args["viewname"], reverse_args.get("kwargs")
        plain = set(reverse_args) <= {"viewname", "kwargs"} and isinstance(viewname, str)
        if plain and not isinstance(viewname, Accessor) and isinstance(kwargs, dict) and len(kwargs) == 1:
            ((name, accessor),) = kwargs.items()
            if isinstance(accessor, Accessor):
                url = UrlPattern(viewname, name)
                return lambda kwargs: url(accessor.resolve(kwargs["record"]))
        return lambda kwargs: link.call_reverse(record=kwargs["record"])

    def __call__(self, content, kwargs):
        attrs = AttributeDict(self.attrs(kwargs))
        attrs["href"] = self.href(kwargs)
        if attrs["href"] is None:
            return content
        return format_html("<a {}>{}</a>", attrs.as_html(), content)


class Plan:
    """What a column's cells are made with, worked out once for the table."""

    __slots__ = ("_value", "bound_column", "link", "render")

    def __init__(self, bound_column):
        self.bound_column = bound_column
        self.render = Call(bound_column.render)
        self._value = None
        link = bound_column.link
        # A link django-tables2 builds otherwise (a column's own link
        # transform) is called as django-tables2 calls it.
        if link is None:
            self.link = None
        elif type(link) is LinkTransform:
            self.link = Link(link)
        else:
            self.link = lambda content, kwargs: link(content, **kwargs)

    @property
    def value(self) -> Call:
        """The cell's value for an export, worked out on the first one asked for."""
        if self._value is None:
            self._value = Call(self.bound_column.value)
        return self._value


class BoundRow(rows.BoundRow):
    """A row whose cells are rendered from their columns' ``Plan``."""

    @property
    def attrs(self):
        row_attrs = self._table.plan_of_row_attrs()({"table": self._table, "record": self._record})
        css_class = self.get_even_odd_css_class()
        if row_attrs.get("class"):
            row_attrs["class"] += " " + css_class
        else:
            row_attrs["class"] = css_class
        return AttributeDict(row_attrs)

    def _call_render(self, bound_column, value=None):
        plan = self._table.plan_of(bound_column)
        kwargs = self._optional_cell_arguments(bound_column, value)
        content = plan.render(kwargs)
        return plan.link(content, kwargs) if plan.link else content

    def _call_value(self, bound_column, value=None):
        return self._table.plan_of(bound_column).value(self._optional_cell_arguments(bound_column, value))

    def items(self):
        # As django-tables2's, with each visible column at hand rather than
        # looked up again by its name for its cell.
        for column in self.table.columns:
            column.current_value = self._get_and_render_with(column, self._call_render, column.default)
            column.current_record = self.record
            yield (column, column.current_value)


class BoundRows(rows.BoundRows):
    """django-tables2's rows of a table, each a ``BoundRow`` of ours."""

    def __iter__(self):
        yield from self.generator_pinned_row(self.pinned_data.get("top"))
        for record in self.data:
            yield BoundRow(record, table=self.table)
        yield from self.generator_pinned_row(self.pinned_data.get("bottom"))

    def __getitem__(self, key):
        if isinstance(key, slice):
            return BoundRows(data=self.data[key], table=self.table, pinned_data=self.pinned_data)
        return BoundRow(record=self.data[key], table=self.table)


class Table(tables.Table):
    """The base of every table of the project (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plans = {}
        self._row_attrs_plan = None
        self.rows = BoundRows(data=self.data, table=self, pinned_data=self.pinned_data)

    def plan_of(self, bound_column) -> Plan:
        """How ``bound_column``'s cells are made, worked out on its first cell."""
        plan = self._plans.get(bound_column.name)
        if plan is None:
            plan = self._plans[bound_column.name] = Plan(bound_column)
        return plan

    def plan_of_row_attrs(self) -> Values:
        """``row_attrs``, worked out for the first row."""
        if self._row_attrs_plan is None:
            self._row_attrs_plan = Values(self.row_attrs)
        return self._row_attrs_plan
