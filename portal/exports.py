"""Files a person downloads from a list: CSV or XLSX, in the person's language.

Every export goes through ``download``: the order lists, the risk lists, the
import's file of refused rows. Callers hand it headers and rows of plain
values; it writes them the way a spreadsheet reads them:

- text a spreadsheet would run as a formula never runs: in CSV it gets a
  leading ``'`` (``escape``; ``unescape`` takes it off again when such a file
  comes back), in XLSX it is a text cell marked as text;
- money (``Decimal``) and counts are numbers, times are shown in the portal's
  time zone (``settings.TIME_ZONE``), ``None`` is an empty cell;
- CSV is UTF-8 with a byte-order mark (so that Excel reads the Chinese),
  streamed a few rows at a time; XLSX is written row by row to a temporary
  file (openpyxl's write-only mode) and streamed from it, so that neither
  holds a whole list in memory.
"""

import csv
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from contextlib import suppress
from datetime import date, datetime
from decimal import Decimal
from itertools import chain, islice
from urllib.parse import quote

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone, translation
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# What a spreadsheet reads as the start of a formula (a tab or a carriage
# return may hide one behind it).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
XLSX_DATE_FORMAT = "yyyy-mm-dd"
# Rows per chunk of a streamed CSV: small enough to start the download at
# once, large enough that the server is not writing a line at a time.
CSV_BATCH = 100
# The first rows of an XLSX are read for its column widths before any is
# written (a write-only sheet states its widths ahead of its rows).
WIDTH_SAMPLE = 200
MIN_WIDTH, MAX_WIDTH = 8, 60
XLSX_CHUNK = 64 * 1024
BOLD = Font(bold=True)


def escape(text: str) -> str:
    """``text`` as a spreadsheet shows it rather than runs it: a leading ``'``
    before a formula's first character (``= + - @``, a tab or a carriage return)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def unescape(text: str) -> str:
    """The text ``escape`` was given: one leading ``'`` before a formula's
    first character is taken off (a file we exported, imported again)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def format_of(request) -> str | None:
    """The file a list is asked for, ``?export=csv`` or ``?export=xlsx``;
    ``None`` for anything else: the list shows its page."""
    wanted = request.GET.get("export")
    return wanted if wanted in FORMATS else None


def download(filename_stem: str, fmt: str, headers: list[str], rows: Iterable[list]) -> StreamingHttpResponse:
    """A streamed download of ``headers`` and ``rows`` as ``fmt`` (one of ``FORMATS``),
    named ``<filename_stem>.<fmt>``.

    Cells are plain values: ``str`` (lazy translations too), ``int``,
    ``Decimal``, aware ``datetime`` (shown in ``settings.TIME_ZONE``),
    ``date`` or ``None``. Headers and rows are read in the language active
    now, also when the CSV is streamed after the view has returned."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if fmt == "csv":
        response = StreamingHttpResponse(
            _csv_chunks(headers, rows, translation.get_language()), content_type=CONTENT_TYPES["csv"]
        )
    else:
        response = FileResponse(_xlsx_file(filename_stem, headers, rows), content_type=CONTENT_TYPES["xlsx"])
        response.block_size = XLSX_CHUNK
    response["Content-Disposition"] = _attachment(filename_stem, fmt)
    return response


def _attachment(stem: str, fmt: str) -> str:
    """An attachment header naming the file twice: in ASCII for old clients,
    and exactly (UTF-8, RFC 6266) for the others."""
    plain = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "export"
    return f"attachment; filename=\"{plain}.{fmt}\"; filename*=UTF-8''{quote(f'{stem}.{fmt}')}"


def _local(moment: datetime) -> datetime:
    """``moment`` as the portal's wall clock shows it, without a zone (as spreadsheets hold times)."""
    if timezone.is_naive(moment):
        return moment
    return moment.astimezone(timezone.get_default_timezone()).replace(tzinfo=None)


# CSV


class _Line:
    """What ``csv.writer`` writes to: each row comes back as its line."""

    def write(self, line):
        return line


def _csv_time(moment: datetime) -> str:
    return _local(moment).isoformat(" ", "seconds")


# How each kind of value is written in a CSV; anything else (a lazy
# translation, say) as its text.
_CSV_TEXT = {
    str: escape,
    int: str,
    float: repr,
    Decimal: lambda value: format(value, "f"),
    datetime: _csv_time,
    date: date.isoformat,
    type(None): lambda value: "",
}


def _csv_text(value) -> str:
    write = _CSV_TEXT.get(type(value))
    return write(value) if write is not None else escape(str(value))


def _csv_chunks(headers, rows, language):
    # The response is read after the view returned, when the request's
    # language is no longer active: each chunk is written in it again.
    writer = csv.writer(_Line())
    rows = iter(rows)
    with translation.override(language):
        chunk = "\ufeff" + writer.writerow([_csv_text(header) for header in headers])
    while chunk:
        yield chunk
        with translation.override(language):
            chunk = "".join(writer.writerow([_csv_text(value) for value in row]) for row in islice(rows, CSV_BATCH))


# XLSX


class _Cells:
    """Cells of one write-only sheet. Plain values go in as they are; a cell
    that needs a format or a type of its own is made here."""

    def __init__(self, sheet):
        self.sheet = sheet
        self.number_formats = {}
        # How each kind of value goes into the sheet; anything else (a lazy
        # translation, say) as its text.
        self.writers = {
            type(None): _as_it_is,
            int: _as_it_is,
            float: _as_it_is,
            str: self.text,
            Decimal: self.money,
            datetime: self.time,
            date: self.day,
        }

    def cell(self, value):
        write = self.writers.get(type(value))
        return write(value) if write is not None else self.text(str(value))

    def header(self, text: str) -> WriteOnlyCell:
        cell = self.text(text)
        if cell is None or isinstance(cell, str):
            cell = WriteOnlyCell(self.sheet, value=cell)
        cell.font = BOLD
        return cell

    def text(self, text: str):
        if not text:
            return None
        text = ILLEGAL_CHARACTERS_RE.sub("", text)
        if not text.startswith(FORMULA_STARTS) and text not in ERROR_CODES:
            return text
        # Written as text, and marked so that editing it in Excel keeps it text.
        cell = WriteOnlyCell(self.sheet, value=text)
        cell.data_type = "s"
        cell.quotePrefix = True
        return cell

    def formatted(self, value, number_format: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(self.sheet)
        cell.number_format = number_format
        cell.value = value
        return cell

    def money(self, value: Decimal) -> WriteOnlyCell:
        places = max(0, -value.as_tuple().exponent) if value.is_finite() else 0
        if places not in self.number_formats:
            self.number_formats[places] = "#,##0" + ("." + "0" * places if places else "")
        return self.formatted(value, self.number_formats[places])

    # A sheet holds a time as its serial number of days, shown through a
    # date format (as openpyxl itself would write it, without the search of
    # the format it makes for every time it is handed).
    def time(self, value: datetime) -> WriteOnlyCell:
        return self.formatted(to_excel(_local(value)), XLSX_TIME_FORMAT)

    def day(self, value: date) -> WriteOnlyCell:
        return self.formatted(to_excel(value), XLSX_DATE_FORMAT)


def _as_it_is(value):
    return value


def _shown_width(value) -> int:
    """How many characters wide ``value`` shows in a cell (Chinese characters count twice)."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return len("2000-01-01 00:00:00")
    if isinstance(value, Decimal):
        return len(f"{value:,f}")
    text = str(value)
    return len(text) + sum(1 for char in text if unicodedata.east_asian_width(char) in "WF")


def _widths(headers, sample) -> list[float]:
    widths = []
    for index, header in enumerate(headers):
        shown = max([_shown_width(header), *(_shown_width(row[index]) for row in sample if index < len(row))])
        widths.append(min(max(shown + 2, MIN_WIDTH), MAX_WIDTH))
    return widths


def _xlsx_file(stem, headers, rows):
    """The workbook, written to a temporary file (gone once closed) and rewound."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=re.sub(r"[\\/*?:\[\]]", "-", stem)[:31] or "export")
    # Closed by the response once sent, and deleted by the system when closed.
    file = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        cells = _Cells(sheet)
        headers = [str(header) for header in headers]
        rows = iter(rows)
        sample = list(islice(rows, WIDTH_SAMPLE))
        for index, width in enumerate(_widths(headers, sample), start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = "A2"
        sheet.append([cells.header(header) for header in headers])
        for row in chain(sample, rows):
            sheet.append([cells.cell(value) for value in row])
        workbook.save(file)
    except BaseException:
        file.close()
        _discard(sheet)
        raise
    file.seek(0)
    return file


def _discard(sheet):
    """Remove the rows a failed export had written so far (openpyxl keeps a
    write-only sheet in a temporary file of its own until the workbook is saved)."""
    writer = sheet._writer
    if writer is None:
        return
    with suppress(Exception):
        if not sheet.closed:
            sheet.close()
    with suppress(OSError, ValueError):
        writer.cleanup()
