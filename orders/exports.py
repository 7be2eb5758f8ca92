"""The file of an order list: exactly the orders a person is looking at, in
the person's language (``portal.exports`` writes it as CSV or XLSX).

Each column is declared once: its header (its field's verbose name where the
order has one), the value it reads, and how that value is put into words. A
file holds what a person reads: a state or a result in words, yes or no, an
organisation's name (and its code beside it), money as a number, times as
times.

The rows are read as plain values (``values_list``), only the fields the
columns name, in chunks: no object is built per order, no query runs per row.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import models
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from orders.models import Order
from portal import exports

# Rows read from the database at a time: a few hundred kilobytes.
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class Column:
    """One column of a file: its ``header`` (lazy, read in the reader's
    language), the ``path`` of the value it reads as the ORM names it
    (``"merchant__name"``), and ``words``, when the stored value is not what a
    person reads: called once per file, in the reader's language, it answers
    the function that puts each value into words."""

    header: str
    path: str
    words: Callable[[], Callable[[object], object]] | None = None


def field(model: type[models.Model], path: str, header=None) -> Column:
    """The column of ``path``, headed by the verbose name of its first field
    unless ``header`` says otherwise."""
    if header is None:
        header = model._meta.get_field(path.split("__")[0]).verbose_name
    return Column(capfirst(header), path)


def label(model: type[models.Model], name: str) -> Column:
    """The column of a field with choices: each code as its label (an unknown one as it is)."""
    model_field = model._meta.get_field(name)

    def words():
        labels = {code: str(text) for code, text in model_field.choices}
        return lambda code: labels.get(code, code) if code else None

    return Column(capfirst(model_field.verbose_name), name, words)


def yes_no(model: type[models.Model], name: str) -> Column:
    """The column of a true-or-false field, as the words yes and no."""

    def words():
        yes, no = gettext("Yes"), gettext("No")
        return lambda value: yes if value else no

    return Column(capfirst(model._meta.get_field(name).verbose_name), name, words)


def rows(queryset, columns: list[Column]) -> Iterator[list]:
    """Each row of ``queryset`` as its values under ``columns``, read in chunks."""
    paths = list(dict.fromkeys(column.path for column in columns))
    readers = [(paths.index(column.path), column.words() if column.words else None) for column in columns]
    for found in queryset.values_list(*paths).iterator(chunk_size=CHUNK_SIZE):
        yield [found[index] if read is None else read(found[index]) for index, read in readers]


def download(filename_stem: str, fmt: str, queryset, columns: list[Column]):
    """The rows of ``queryset`` under ``columns`` as a file (``fmt``: one of ``portal.exports.FORMATS``)."""
    return exports.download(filename_stem, fmt, [column.header for column in columns], rows(queryset, columns))


# The fields the platform creates an order with come first, in the order the
# order-create API takes them; then where the order stands.
COLUMNS = [
    field(Order, "order_no"),
    field(Order, "trade_no"),
    field(Order, "merchant__name"),
    field(Order, "merchant__code", _("merchant code")),
    field(Order, "provider__name"),
    field(Order, "provider__code", _("provider code")),
    field(Order, "sku"),
    field(Order, "item_title"),
    field(Order, "quantity"),
    field(Order, "amount"),
    field(Order, "paid_at"),
    field(Order, "auto_confirm_at"),
    label(Order, "state"),
    field(Order, "state_changed_at"),
    label(Order, "appraisal_result"),
    yes_no(Order, "flow_blocked"),
    label(Order, "blocked_stage"),
    field(Order, "inbound_carrier"),
    field(Order, "inbound_tracking_no"),
    field(Order, "waybill_no"),
]


def download_orders(queryset, filename_stem: str, fmt: str):
    """The orders of ``queryset`` (a list as filtered, in the person's scope) as a file."""
    return download(filename_stem, fmt, queryset, COLUMNS)
