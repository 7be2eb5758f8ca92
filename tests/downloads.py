"""Reading the files the lists export, as a spreadsheet would open them."""

import codecs
import csv
import io

from django.core.signals import request_finished
from django.db import close_old_connections
from openpyxl import load_workbook


def body(response) -> bytes:
    """Everything a streamed response sends (the test client closes it at the end, as a server does)."""
    assert response.streaming
    return b"".join(response.streaming_content)


def close(response):
    """Close a response made outside the test client as a server would, but
    keep the test's database connection (as the test client does)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def csv_rows(response) -> list[list[str]]:
    """The rows of a CSV download; it must start with the UTF-8 byte-order mark."""
    data = body(response)
    assert data.startswith(codecs.BOM_UTF8), data[:20]
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def sheet(response):
    """The one sheet of an XLSX download."""
    return load_workbook(io.BytesIO(body(response))).active


def sheet_rows(response) -> list[list]:
    """The values of an XLSX download, row by row."""
    return [list(row) for row in sheet(response).iter_rows(values_only=True)]


def column(rows: list[list], header: str) -> list:
    """The values under ``header``, one per row after the header row."""
    index = rows[0].index(header)
    return [row[index] for row in rows[1:]]
