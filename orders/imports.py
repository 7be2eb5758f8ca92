"""Orders from a spreadsheet (SPEC §6.3): ``manage.py import_orders`` and the
web import read a CSV (UTF-8 with or without a BOM, or GB18030, as Excel saves
it in China) or an XLSX file, check its columns before anything is written,
and create its rows through ``workflow.create_orders`` a batch at a time.

A whole file is refused (``FileRefused``) for what no row can fix: too big,
not a spreadsheet, cut short, an unknown or a missing column. A row is
refused on its own, with its row number, column and reason, and never stops
the good rows. An ``ImportJob`` holds the file and the progress; each batch
commits with its counters, so an import a dead worker left is resumed where
it stopped (``run``), neither losing nor repeating a row.
"""

import codecs
import csv
import datetime
import io
import logging
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers
from rest_framework.settings import ISO_8601

from orders import workflow
from orders.api.serializers import OrderCreateSerializer, TimeField
from orders.choices import ImportStatus
from orders.inputs import sane_time
from orders.models import ImportJob, ImportRefusal, Order
from portal.actors import Actor
from portal.choices import EventSource, OrganisationKind
from portal.exports import unescape
from portal.models import Organisation

logger = logging.getLogger(__name__)

CSV, XLSX = "csv", "xlsx"
FORMATS = (CSV, XLSX)
# The creation fields (SPEC §6.2) an import reads; the buyer's are optional.
FIELDS = workflow.CREATION_FIELDS
REQUIRED = tuple(name for name in FIELDS if not name.startswith("buyer_"))
# The column the refused-rows file adds; an import of that file skips it.
REASON = gettext_lazy("Why refused")
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
_DELIMITERS = ",\t;"
_PIECE = 1 << 20
# A job taken over this many times (its worker died or failed each time) is given up.
MAX_TAKEOVERS = 5


class FileRefused(Exception):
    """The whole file is refused before any row is written; ``str`` says why."""


def label(name: str) -> str:
    """The column heading of a creation field in the active language."""
    return str(Order._meta.get_field(name).verbose_name)


def headings(language: str) -> list[str]:
    """The column headings of a file to import, in ``language``."""
    with translation.override(language):
        return [label(name) for name in FIELDS]


def _names() -> dict[str, str]:
    """Every heading a column may carry -> its field: the field's name, and
    its label in each language."""
    names = {}
    for code, _language in settings.LANGUAGES:
        with translation.override(code):
            names.update({_folded(label(name)): name for name in FIELDS})
            names[_folded(str(REASON))] = ""
    names.update({name: name for name in FIELDS})
    return names


def example(merchant: str, provider: str) -> list:
    """One row of a sample file, under ``headings``."""
    paid = timezone.localtime().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    number = paid.strftime("%Y%m%d%H") + "0001"
    return [
        number,
        "T" + number,
        merchant,
        provider,
        "SKU-116610LN",
        _("Rolex Submariner 116610LN"),
        1,
        Decimal("68500.00"),
        paid,
        paid + timedelta(days=10),
        "",
        "",
        "",
    ]


def _folded(heading) -> str:
    return " ".join(str(heading or "").split()).casefold()


@dataclass
class Sheet:
    """A file read far enough to know its columns and its rows.

    ``content`` holds the rows as CSV: the file itself, or, for a workbook,
    its first sheet written out as UTF-8 CSV once, as it was read (one record
    per sheet row, so row numbers stay the sheet's). The job keeps that, and
    the worker reads only CSV.
    """

    file_format: str
    headings: list[str]
    fields: list[str]  # per column: the field it fills, or "" for one skipped
    total: int
    content: bytes
    _encoding: str = "utf-8"
    _delimiter: str = ","

    def rows(self, skip: int = 0):
        """``(row number, cells)`` for each row with anything in it, after
        the first ``skip`` of them; row 1 is the heading."""
        seen = 0
        for number, cells in self._raw_rows():
            if all(_blank(cell) for cell in cells):
                continue
            seen += 1
            if seen <= skip:
                continue
            yield number, cells

    def _raw_rows(self):
        reader = csv.reader(_text(self.content, self._encoding), delimiter=self._delimiter)
        next(reader, None)
        # A record's number is its row in a spreadsheet, whatever line breaks its cells hold.
        yield from enumerate(reader, start=2)


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def read(content: bytes, file_name: str = "") -> Sheet:
    """Read ``content`` (CSV or XLSX) far enough to refuse it whole or to
    know its columns and how many rows it holds. Raises ``FileRefused``."""
    if not content or content.isspace():
        raise FileRefused(_("The file is empty."))
    if content.startswith(_XLSX_MAGIC):
        sheet = _read_xlsx(content)
    elif content.startswith(_XLS_MAGIC):
        raise FileRefused(
            _("This is an old Excel file (.xls). Save it as Excel workbook (.xlsx) or CSV and try again.")
        )
    else:
        sheet = _read_csv(content)
    if sheet.total == 0:
        raise FileRefused(_("The file has column headings but no rows."))
    if sheet.total > settings.IMPORT_MAX_ROWS:
        raise FileRefused(
            _("The file has %(rows)s rows; an import takes at most %(limit)s. Split it into smaller files.")
            % {"rows": sheet.total, "limit": settings.IMPORT_MAX_ROWS}
        )
    return sheet


def too_big(size: int) -> str:
    return _("The file is %(size)s MB; an import takes at most %(limit)s MB. Split it into smaller files.") % {
        "size": _megabytes(size),
        "limit": _megabytes(settings.IMPORT_MAX_BYTES),
    }


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0")


def _encoding(content: bytes) -> str:
    """The encoding of a CSV: UTF-8 (with or without a BOM), UTF-16 with its
    BOM (Excel's "Unicode text"), or else GB18030 (which GBK files are too).
    Decided by decoding it a piece at a time: the whole text is never held."""
    if content.startswith(codecs.BOM_UTF8):
        encodings = ["utf-8-sig"]
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8", "gb18030"]
    whole = memoryview(content)
    for encoding in encodings:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            for at in range(0, len(whole), _PIECE):
                if "\x00" in decoder.decode(whole[at : at + _PIECE]):
                    break
            else:
                decoder.decode(b"", final=True)
                return encoding
        except UnicodeDecodeError:
            continue
    raise FileRefused(
        _(
            "This file is not a spreadsheet this import reads: it is neither text in UTF-8 or GB18030 (CSV) "
            "nor an Excel workbook (.xlsx)."
        )
    )


def _text(content: bytes, encoding: str):
    """The text of a CSV, decoded as it is read."""
    return io.TextIOWrapper(io.BytesIO(content), encoding=encoding, newline="")


def _read_csv(content: bytes) -> Sheet:
    encoding = _encoding(content)
    text = _text(content, encoding)
    first_line = text.readline()
    text.seek(0)
    delimiter = max(_DELIMITERS, key=first_line.count)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        heading = next(reader, [])
        fields = _columns(heading)
        total = 0
        for cells in reader:
            if not all(_blank(cell) for cell in cells):
                total += 1
    except csv.Error:
        raise FileRefused(
            _("The file cannot be read past line %(line)s: it may be cut short or a quote is not closed.")
            % {"line": reader.line_num}
        ) from None
    return Sheet(CSV, heading, fields, total, content, encoding, delimiter)


_DAMAGED = gettext_lazy("This Excel file cannot be read: it may be damaged or cut short.")


def _xlsx_cells(content: bytes):
    """The rows of the workbook's first sheet, as lists of cells (calamine
    reads a sheet many times faster than openpyxl)."""
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        if not workbook.sheet_names:
            raise FileRefused(str(_DAMAGED))
        yield from workbook.get_sheet_by_index(0).iter_rows()
    except FileRefused:
        raise
    except Exception:  # calamine's own refusal of a damaged or truncated workbook
        raise FileRefused(str(_DAMAGED)) from None


def _read_xlsx(content: bytes) -> Sheet:
    """Read the first sheet once: check its headings, count its rows and
    write them out as CSV, each cell as the text the import reads."""
    rows = _xlsx_cells(content)
    heading = [_as_text(cell) for cell in next(rows, [])]
    while heading and not heading[-1].strip():
        heading.pop()
    fields = _columns(heading)
    out = io.BytesIO()
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(heading)
    total = 0
    for cells in rows:
        cells = [_as_text(cell) for cell in cells]
        total += not all(_blank(cell) for cell in cells)
        writer.writerow(cells)
    text.flush()
    return Sheet(XLSX, heading, fields, total, out.getvalue())


def _as_text(value) -> str:
    """A workbook cell as text: a time as ``2026-11-30 10:15:00`` (local, as
    the sheet shows it), a whole number without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float):
        # A number Excel typed: 202611300001.0 is an order number, 1234.5 an amount.
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _columns(heading: list[str]) -> list[str]:
    """The field each column fills; refuses unknown, repeated and missing columns."""
    if not any(str(cell).strip() for cell in heading):
        raise FileRefused(_("The first row must hold the column headings; it is empty."))
    names = _names()
    fields = [names.get(_folded(cell.lstrip("\ufeff"))) for cell in heading]
    unknown = [cell for cell, name in zip(heading, fields, strict=True) if name is None]
    if unknown:
        raise FileRefused(
            _("Unknown column(s): %(columns)s. The columns are: %(expected)s.")
            % {"columns": _listed(unknown), "expected": _listed(label(name) for name in FIELDS)}
        )
    filled = [name for name in fields if name]
    repeated = sorted({name for name in filled if filled.count(name) > 1}, key=FIELDS.index)
    if repeated:
        raise FileRefused(_("Column(s) given twice: %(columns)s.") % {"columns": _listed(map(label, repeated))})
    missing = [name for name in REQUIRED if name not in filled]
    if missing:
        raise FileRefused(_("Missing column(s): %(columns)s.") % {"columns": _listed(map(label, missing))})
    return fields


def _listed(items) -> str:
    separator = "、" if (translation.get_language() or "").startswith("zh") else ", "
    return separator.join(f"“{item}”" for item in items)


# --- one row ---------------------------------------------------------------------


class _Organisation(serializers.Field):
    """An organisation code, looked up in the codes read once per import."""

    default_error_messages = {"unknown": gettext_lazy("No active {kind} has the code “{code}”.")}

    def __init__(self, kind, known, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.known = kind, known

    def to_internal_value(self, data):
        code = str(data).strip()
        organisation = self.known.get(code) or self.known.get(code.upper())
        if organisation is None:
            self.fail("unknown", kind=str(OrganisationKind(self.kind).label).lower(), code=code)
        return organisation


# The times spreadsheets write most: read without trying each format in turn.
_PLAIN_TIME = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")


class _SheetTime(TimeField):
    """A time as spreadsheets write it: ISO 8601, ``2026-11-30 14:00`` or
    ``2026/11/30 14:00``; one that names no offset is in Asia/Shanghai."""

    def __init__(self, **kwargs):
        formats = [ISO_8601, "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"]
        super().__init__(input_formats=formats, **kwargs)

    def to_internal_value(self, value):
        if isinstance(value, str):
            value = value.strip()
            plain = _PLAIN_TIME.fullmatch(value)
            if plain:
                try:
                    value = datetime.datetime(*(int(part or 0) for part in plain.groups()))
                except ValueError:
                    self.fail("invalid", format=", ".join(self.input_formats))
        parsed = serializers.DateTimeField.to_internal_value(self, value)
        try:
            return sane_time(parsed)
        except ValueError:
            self.fail("range")


class RowSerializer(OrderCreateSerializer):
    """A row of a file: the order-create API's body (SPEC §6.2), its
    organisations looked up in ``known`` and its times as spreadsheets write them."""

    def __init__(self, *args, merchants, providers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"] = _Organisation(OrganisationKind.MERCHANT, merchants)
        self.fields["provider"] = _Organisation(OrganisationKind.PROVIDER, providers)
        self.fields["paid_at"] = _SheetTime()
        self.fields["auto_confirm_at"] = _SheetTime()


def _cell(value: str) -> str:
    """A cell as the row's body takes it (a formula-looking cell this portal
    exported escaped is read back as it was)."""
    return unescape(value.strip())


# --- a job ----------------------------------------------------------------------


def start(content: bytes, file_name: str, user=None, organisation=None, language=None) -> ImportJob:
    """Check ``content`` and store it as a job, queued; raises ``FileRefused``
    for a file no row of which could be imported."""
    if len(content) > settings.IMPORT_MAX_BYTES:
        raise FileRefused(too_big(len(content)))
    sheet = read(content, file_name)
    file_format, total, headings = sheet.file_format, sheet.total, sheet.headings
    return ImportJob.objects.create(
        organisation=organisation or user.organisation,
        created_by=user,
        file_name=file_name[:255],
        file_format=file_format,
        # Compressed: a CSV shrinks several times, and so does every copy of
        # it on its way to the database and back.
        content=zlib.compress(sheet.content, 1),
        language=language or (user.language if user is not None else settings.LANGUAGE_CODE),
        total=total,
        headings=headings,
    )


def enqueue(job: ImportJob) -> None:
    """Ask a worker to run ``job`` once the transaction that stored it
    commits. Only a nudge: a job no worker started is handed out again by
    ``resume_stalled``, so a broker that is down delays an import, and the
    upload still succeeds."""
    if not settings.IMPORT_ENQUEUE:
        return

    def send():
        try:
            run_import.apply_async((job.pk,), retry=False)
        except Exception:
            logger.warning("could not enqueue import %s; beat will hand it out", job.pk, exc_info=True)

    transaction.on_commit(send)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_import(job_id: int) -> None:
    run(job_id)


@shared_task
def resume_stalled() -> int:
    """Beat: hand every import a worker stopped working on (its heartbeat
    older than ``IMPORT_STALL_SECONDS``) to a worker again."""
    stalled = ImportJob.objects.filter(
        status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING],
        heartbeat_at__lt=timezone.now() - timedelta(seconds=settings.IMPORT_STALL_SECONDS),
    ).values_list("pk", flat=True)
    waiting = ImportJob.objects.filter(
        status=ImportStatus.QUEUED,
        heartbeat_at__isnull=True,
        created_at__lt=timezone.now() - timedelta(seconds=settings.IMPORT_STALL_SECONDS),
    ).values_list("pk", flat=True)
    pks = sorted({*stalled, *waiting})
    for pk in pks:
        run_import.delay(pk)
    return len(pks)


def _claim(job_id: int) -> tuple[ImportJob | None, str]:
    """Take ``job_id`` for this worker unless it is finished or another worker
    is working on it (its heartbeat fresh)."""
    lease = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().defer("content").filter(pk=job_id).first()
        if job is None or job.finished:
            return None, ""
        fresh = job.heartbeat_at and job.heartbeat_at > now - timedelta(seconds=settings.IMPORT_STALL_SECONDS)
        if job.lease and fresh:
            return None, ""
        if job.lease and job.resumed >= MAX_TAKEOVERS:
            # Stopped this often, it stops every worker that takes it: say so, keep what was done.
            with translation.override(job.language):
                job.failure = _(
                    "The import stopped %(times)s times at row %(row)s and was given up. The rows before it are "
                    "imported; import the file again to retry the rest."
                ) % {"times": job.resumed + 1, "row": job.done + 2}
            job.status, job.finished_at = ImportStatus.FAILED, now
            job.save(update_fields=["status", "failure", "finished_at"])
            logger.error("import %s given up after %s takeovers", job.pk, job.resumed)
            return None, ""
        job.resumed += 1 if job.lease else 0
        job.lease, job.heartbeat_at, job.status = lease, now, ImportStatus.RUNNING
        job.started_at = job.started_at or now
        job.save(update_fields=["lease", "heartbeat_at", "status", "started_at", "resumed"])
    return job, lease


def run(job_id: int, progress=None) -> ImportJob | None:
    """Import the rows of job ``job_id`` not imported yet, a batch at a time;
    ``progress(job)`` is called after each batch. Returns the job as it ends,
    or None when it was finished or another worker holds it."""
    job, lease = _claim(job_id)
    if job is None:
        return None
    with translation.override(job.language):
        try:
            _import(job, lease, progress)
        except FileRefused as refusal:
            ImportJob.objects.filter(pk=job.pk, lease=lease).update(
                status=ImportStatus.FAILED, failure=str(refusal), finished_at=timezone.now()
            )
    job.refresh_from_db()
    return job


def _import(job: ImportJob, lease: str, progress) -> None:
    sheet = read(zlib.decompress(ImportJob.objects.values_list("content", flat=True).get(pk=job.pk)), job.file_name)
    importer = _Importer(job, sheet)
    batch = []
    for row in sheet.rows(skip=job.done):
        batch.append(row)
        if len(batch) == settings.IMPORT_BATCH_ROWS:
            if not _commit(job, lease, importer, batch):
                return
            batch = []
            if progress:
                progress(job)
    if batch and not _commit(job, lease, importer, batch):
        return
    ImportJob.objects.filter(pk=job.pk, lease=lease).update(
        status=ImportStatus.DONE, total=F("done"), finished_at=timezone.now()
    )
    if progress:
        job.refresh_from_db()
        progress(job)


def _commit(job: ImportJob, lease: str, importer, batch) -> bool:
    """Import ``batch`` and count it, in one transaction; False if another
    worker took the job over meanwhile."""
    with transaction.atomic():
        current = ImportJob.objects.select_for_update().only("lease", "done").get(pk=job.pk)
        if current.lease != lease:
            return False
        counts, refusals = importer.rows(batch)
        ImportRefusal.objects.bulk_create(refusals)
        ImportJob.objects.filter(pk=job.pk).update(
            done=F("done") + len(batch),
            created=F("created") + counts["created"],
            unchanged=F("unchanged") + counts["unchanged"],
            refused=F("refused") + len(refusals),
            heartbeat_at=timezone.now(),
        )
    job.done += len(batch)
    job.created += counts["created"]
    job.unchanged += counts["unchanged"]
    job.refused += len(refusals)
    return True


class _Importer:
    """Turns a batch of rows into orders through ``workflow.create_orders``."""

    def __init__(self, job: ImportJob, sheet: Sheet):
        self.job, self.sheet = job, sheet
        self.actor = Actor(source=EventSource.IMPORT, user=job.created_by, organisation=job.organisation)
        organisations = Organisation.objects.filter(is_active=True).only("pk", "code", "kind", "name")
        self.known = {kind: {} for kind in OrganisationKind.values}
        for organisation in organisations:
            self.known[organisation.kind][organisation.code] = organisation
        # One body for every row: its fields are built once, not per row.
        self.serializer = RowSerializer(
            merchants=self.known[OrganisationKind.MERCHANT], providers=self.known[OrganisationKind.PROVIDER]
        )
        self.column_of = {name: heading for heading, name in zip(sheet.headings, sheet.fields, strict=False) if name}

    def rows(self, batch):
        """Import ``batch``; returns the counts and the refusals to store."""
        refusals, valid, numbers = [], [], []
        for number, cells in batch:
            body, extra = {}, False
            for index, cell in enumerate(cells):
                name = self.sheet.fields[index] if index < len(self.sheet.fields) else None
                if name:
                    body[name] = _cell(cell)
                elif name is None and not _blank(cell):
                    extra = True
            for name in REQUIRED:
                body.setdefault(name, "")
            if extra:
                refusals.append(self._refusal(number, cells, "", _("The row has more cells than there are columns.")))
                continue
            try:
                valid_row = self.serializer.run_validation(body)
            except serializers.ValidationError as invalid:
                name, messages = next(iter(invalid.detail.items()))
                refusals.append(self._refusal(number, cells, name, " ".join(str(m) for m in messages)))
                continue
            valid.append(valid_row)
            numbers.append((number, cells))
        counts = {"created": 0, "unchanged": 0}
        for (number, cells), result in zip(numbers, workflow.create_orders(self.actor, valid), strict=True):
            if result.error is not None:
                refusals.append(self._refusal(number, cells, _column(result.error), result.error.message))
            else:
                counts["created" if result.created else "unchanged"] += 1
        return counts, refusals

    def _refusal(self, number, cells, name, reason) -> ImportRefusal:
        column = self.column_of.get(name, "") if name in FIELDS else ""
        return ImportRefusal(job_id=self.job.pk, row=number, column=column, reason=reason, cells=list(cells))


def _column(error) -> str:
    """The field a workflow refusal is about."""
    fields = getattr(error, "fields", None)
    if fields:
        return next(iter(fields))
    return {"conflict": "order_no", "trade_other_merchant": "trade_no", "not_allowed": "merchant"}.get(error.code, "")


def refused_rows(job: ImportJob):
    """The refused rows as a file takes them: the file's own headings and a
    last column saying why, for ``portal.exports.download``."""
    width = len(job.headings)

    def rows():
        for refusal in job.refusals.order_by("row").iterator(chunk_size=2000):
            cells = list(refusal.cells)[:width]
            cells += [""] * (width - len(cells))
            where = _("Row %(row)s") % {"row": refusal.row}
            if refusal.column:
                where += f" · {refusal.column}"
            yield [*cells, f"{where}: {refusal.reason}"]

    return [*job.headings, str(REASON)], rows()
