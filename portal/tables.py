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

The template's rows cost as much again: for every cell it rebuilds the
column's ``td`` attributes, weighs ``column.localize`` and, for a field with
choices, ``get_FOO_display()`` rebuilds the field's labels. The project's
table template (templates/orders/_table.html) has its ``<tbody>`` rows made
here instead (``Body``): each column's ``td`` attributes and way of showing
a cell worked out once a render, each field's labels once a render in the
active language, and the markup that of django-tables2's bootstrap5 template
to the byte. Its header, sorting and paging are untouched.

The methods overridden here are django-tables2's own, not its documented
API: tests/portal/test_table_rendering.py holds every list page's tables
against django-tables2's own rows and template, so an upgrade that changes
what they do shows there.
"""

import re
from functools import cache, partialmethod

import django_tables2 as tables
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.template import Engine
from django.template.base import VariableNode, render_value_in_context
from django.urls import NoReverseMatch, reverse
from django.utils.encoding import force_str
from django.utils.hashable import make_hashable
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import get_language
from django_tables2 import rows
from django_tables2.columns.base import LinkTransform
from django_tables2.columns.linkcolumn import BaseLinkColumn
from django_tables2.columns.manytomanycolumn import ManyToManyColumn
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


# What tells a value from none: a label, a field, may be None.
MISSING = object()


def labels_shown_by(model, name):
    """The field whose labels ``model``'s ``name`` (a ``get_FOO_display``)
    shows, when that is Django's own method; None when the model has one of
    its own, which is called as ever."""
    for klass in model.__mro__:
        if name in vars(klass):
            method = vars(klass)[name]
            stock = (
                isinstance(method, partialmethod)
                and method.func is models.Model._get_FIELD_display
                and not method.args
                and list(method.keywords) == ["field"]
            )
            return method.keywords["field"] if stock else None
    return None


class Source:
    """Where a column's cells take their value from:
    ``BoundRow._get_and_render_with`` of django-tables2, with the accessor
    split and its field looked up once for the column rather than for every
    cell, and a choice's label taken from the table's labels of the render
    (``Table.label``) rather than rebuilt by ``get_FOO_display()``."""

    __slots__ = (
        "accessor",
        "display",
        "empty_values",
        "fields",
        "has_choices",
        "many",
        "path",
        "remainder",
        "text_link",
    )

    def __init__(self, bound_column):
        self.accessor = Accessor(bound_column.accessor)
        path, _, self.remainder = self.accessor.rpartition(self.accessor.SEPARATOR)
        self.path = Accessor(path)
        self.display = f"get_{self.remainder}_display"
        column = bound_column.column
        self.empty_values = column.empty_values
        self.many = isinstance(column, ManyToManyColumn)
        # A link column with a text of its own shows it where the record has no value.
        self.text_link = isinstance(column, BaseLinkColumn) and column.text is not None
        # By the record's class: whether the accessor ends at a field with choices.
        self.has_choices = {}
        # By the class of the object that has the field: the field of its ``get_FOO_display``.
        self.fields = {}

    def ends_at_choices(self, record) -> bool:
        kind = type(record)
        found = self.has_choices.get(kind)
        if found is None:
            found = self.has_choices[kind] = bool(getattr(self.accessor.get_field(record), "choices", ()))
        return found

    def label(self, instance, table):
        """What ``instance.get_FOO_display()`` answers, or MISSING where the
        instance has no such method."""
        kind = type(instance)
        field = self.fields.get(kind, MISSING)
        if field is MISSING:
            field = self.fields[kind] = labels_shown_by(kind, self.display)
        if field is not None and self.display not in vars(instance):
            return table.label(field, getattr(instance, field.attname))
        display = getattr(instance, self.display, None)
        return display() if display else MISSING


class Plan:
    """What a column's cells are made with, worked out once for the table."""

    __slots__ = ("_value", "bound_column", "link", "render", "source")

    def __init__(self, bound_column):
        self.bound_column = bound_column
        self.render = Call(bound_column.render)
        self.source = Source(bound_column)
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

    def _get_and_render_with(self, bound_column, render_func, default):
        # As django-tables2's: a field with choices shows its label, and a
        # value that cannot be read is none.
        source = self._table.plan_of(bound_column).source
        record = self._record
        value = None
        resolve = bool(source.remainder)
        if source.ends_at_choices(record):
            instance = source.path.resolve(record, quiet=True)
            if isinstance(instance, models.Model):
                try:
                    label = source.label(instance, self._table)
                except FieldDoesNotExist:
                    pass
                else:
                    if label is not MISSING:
                        value, resolve = label, False
        if resolve:
            try:
                value = source.accessor.resolve(record)
            except Exception:
                if source.text_link:
                    return render_func(bound_column)
        if value in source.empty_values or (source.many and not value.exists()):
            return default
        return render_func(bound_column, value)

    def _call_render(self, bound_column, value=None):
        plan = self._table.plan_of(bound_column)
        kwargs = self._optional_cell_arguments(bound_column, value)
        content = plan.render(kwargs)
        return plan.link(content, kwargs) if plan.link else content

    def _call_value(self, bound_column, value=None):
        return self._table.plan_of(bound_column).value(self._optional_cell_arguments(bound_column, value))

    def items(self, columns=None):
        # As django-tables2's, with each visible column at hand rather than
        # looked up again by its name for its cell; ``Body`` hands over the
        # columns it has listed once for all the rows.
        for column in self.table.columns if columns is None else columns:
            column.current_value = self._get_and_render_with(column, self._call_render, column.default)
            column.current_record = self.record
            yield (column, column.current_value)


# The text around the rows in django-tables2's bootstrap5 template, to the
# byte: a row, a cell, and the rows of a table with none.
ROW_OPEN = "\n                    \n                    <tr "
ROW_OPENED = ">\n                        "
CELL_OPEN = "\n                            <td "
CELL_CLOSE = "</td>\n                        "
ROW_CLOSE = "\n                    </tr>\n                    \n                "
NO_ROWS = "\n                    "
NO_ROWS_TEXT = '\n                    \n                        <tr><td colspan="'
NO_ROWS_TEXT_CLOSE = "</td></tr>\n                    \n                    "
NO_ROWS_CLOSE = "\n                "


@cache
def cell_nodes():
    """The template's ``{{ cell }}``, ``{{ cell|localize }}`` and
    ``{{ cell|unlocalize }}``, for the cells that are more than a value to print."""
    template = Engine(libraries={"l10n": "django.templatetags.l10n"}).from_string(
        "{% load l10n %}{{ cell }}{{ cell|localize }}{{ cell|unlocalize }}"
    )
    shown, localized, unlocalized = (node for node in template.nodelist if isinstance(node, VariableNode))
    return {None: shown, True: localized, False: unlocalized}


class ColumnCells:
    """What the template decides for each of a column's cells, decided once a
    render: its ``td`` attributes, and how its cells are printed."""

    __slots__ = ("bound_column", "localize", "td")

    def __init__(self, table, bound_column):
        self.bound_column = bound_column
        localize = bound_column.localize
        self.localize = None if localize is None else bool(localize)
        # Attributes given as callables may differ from cell to cell
        # (django-tables2 passes them the cell's record and value): those
        # are worked out for every cell, as the template does.
        attrs = {**table.attrs, **bound_column.column.attrs}
        self.td = bound_column.attrs["td"].as_html() if fixed(attrs.get("td", attrs.get("cell", {}))) else None

    def td_html(self):
        return self.td if self.td is not None else self.bound_column.attrs["td"].as_html()

    def show(self, cell, context):
        """``cell`` as the template prints it in ``context``."""
        if self.localize is None and not callable(cell):
            if type(cell) is SafeString:
                return cell
            return render_value_in_context(cell, context)
        # A callable is called by the template, and a column that localizes
        # its cells or not has them filtered: as ever, by the template's own nodes.
        with context.push(cell=cell):
            return cell_nodes()[self.localize].render(context)


def fixed(attrs) -> bool:
    """Whether ``attrs`` holds no callable, at any depth."""
    if callable(attrs):
        return False
    return not isinstance(attrs, dict) or all(fixed(value) for value in attrs.values())


class Body:
    """The rows of a table's ``<tbody>``, as django-tables2's bootstrap5
    template prints them (``{% include table.tbody_rows %}`` in
    templates/orders/_table.html): the same rows and cells, escaped as the
    template escapes them, with what the template decides for every cell
    decided once for each column."""

    def __init__(self, table):
        self.table = table

    def render(self, context):
        table = self.table
        # The labels of the fields with choices, in the language of this render.
        table.labels = {}
        rows = table.paginated_rows
        if not hasattr(rows, "__len__"):
            rows = list(rows)
        if len(rows) < 1:
            return self.no_rows(context)
        bound_columns = list(table.columns)
        columns = [ColumnCells(table, bound_column) for bound_column in bound_columns]
        out = []
        for row in rows:
            out += (ROW_OPEN, row.attrs.as_html(), ROW_OPENED)
            # A pinned row is django-tables2's own, and lists its columns itself.
            items = row.items(bound_columns) if isinstance(row, BoundRow) else row.items()
            for column, (_, cell) in zip(columns, items, strict=True):
                out += (CELL_OPEN, column.td_html(), ">", column.show(cell, context), CELL_CLOSE)
            out.append(ROW_CLOSE)
        return "".join(out)

    def no_rows(self, context):
        table = self.table
        if not table.empty_text:
            return NO_ROWS + NO_ROWS_CLOSE
        count = render_value_in_context(len(table.columns), context)
        text = render_value_in_context(table.empty_text, context)
        return f'{NO_ROWS}{NO_ROWS_TEXT}{count}">{text}{NO_ROWS_TEXT_CLOSE}{NO_ROWS_CLOSE}'


class BoundRows(rows.BoundRows):
    """django-tables2's rows of a table, each a ``BoundRow`` of ours."""

    def body(self) -> Body:
        """The rows printed for the table template; django-tables2's own
        rows are printed by its own template."""
        return Body(self.table)

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
        # By field and language: value → label (``label``).
        self.labels = {}
        self.rows = BoundRows(data=self.data, table=self, pinned_data=self.pinned_data)

    @property
    def tbody_rows(self) -> Body | None:
        """What templates/orders/_table.html prints as the rows of ``<tbody>``;
        None leaves them to django-tables2's template."""
        body = getattr(self.rows, "body", None)
        return body() if body is not None else None

    def label(self, field, value):
        """What ``get_FOO_display()`` answers for ``value`` of ``field``, from
        the field's labels read once in the active language."""
        key = (field, get_language())
        labels = self.labels.get(key)
        if labels is None:
            choices = dict(make_hashable(field.flatchoices))
            labels = self.labels[key] = {k: force_str(v, strings_only=True) for k, v in choices.items()}
        label = labels.get(make_hashable(value), MISSING)
        return force_str(value, strings_only=True) if label is MISSING else label

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
