"""Paging of the web lists, bounded so that no page number or page size a
visitor types can reach the database as an impossible offset."""

from django.core.paginator import EmptyPage
from django_tables2 import LazyPaginator, RequestConfig

PER_PAGE_CHOICES = (10, 25, 50, 100)
DEFAULT_PER_PAGE = 25
# Far past any real list (10 million rows at 100 a page), far below the
# offsets SQLite and PostgreSQL refuse as out of range.
MAX_PAGE = 100_000


def per_page_of(request) -> int:
    """The page size the request asks for, if it is one of ``PER_PAGE_CHOICES``."""
    value = request.GET.get("per_page", "")
    return int(value) if value.isascii() and value.isdigit() and int(value) in PER_PAGE_CHOICES else DEFAULT_PER_PAGE


class BoundedPaginator(LazyPaginator):
    """``LazyPaginator`` that serves only the page sizes offered, and treats a
    page past ``MAX_PAGE`` as a page past the end (the table then shows its
    first page, as for any page past the end)."""

    def __init__(self, object_list, per_page, *args, **kwargs):
        if per_page not in PER_PAGE_CHOICES:
            per_page = DEFAULT_PER_PAGE
        super().__init__(object_list, per_page, *args, **kwargs)

    def validate_number(self, number):
        number = super().validate_number(number)
        if number > MAX_PAGE:
            raise EmptyPage("past the last page")
        return number


def sort_as_asked(request, table):
    """Sort ``table`` from the request's ``sort``, as ``paginate`` does, without paging it."""
    RequestConfig(request, paginate=False).configure(table)
    return table


def paginate(request, table, per_page=DEFAULT_PER_PAGE):
    """Sort and page ``table`` from the request's ``sort``, ``page`` and ``per_page``."""
    RequestConfig(request, paginate={"per_page": per_page, "paginator_class": BoundedPaginator}).configure(table)
    return table
