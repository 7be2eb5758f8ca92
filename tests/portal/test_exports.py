"""The one door of every downloaded file (``portal.exports``): formulas
defused and given back, values as spreadsheets read them, the request's
language kept while the file streams, and nothing left on disk."""

import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import translation
from django.utils.translation import gettext_lazy

from portal.exports import FORMATS, download, escape, format_of, unescape
from tests.downloads import body, close, csv_rows, sheet


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Sneakers", "Sneakers"),
        ("'=kept", "'=kept"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_escape_defuses_a_formula_and_unescape_gives_the_text_back(text, escaped):
    assert escape(text) == escaped
    if text.startswith(("=", "+", "-", "@", "\t", "\r")):
        assert unescape(escaped) == text


@pytest.mark.parametrize("text", ["'quoted", "'", "''=x", "plain", "it's"])
def test_unescape_leaves_what_escape_did_not_write(text):
    assert unescape(text) == text


@pytest.mark.parametrize(
    ("query", "wanted"),
    [("export=csv", "csv"), ("export=xlsx", "xlsx"), ("export=pdf", None), ("export=", None), ("", None)],
)
def test_the_format_comes_from_the_export_parameter_or_not_at_all(query, wanted):
    assert format_of(RequestFactory().get(f"/orders/?{query}")) == wanted


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        download("orders", "pdf", ["a"], [])


def test_csv_cells_are_plain_text_numbers_and_shanghai_times():
    row = [
        "=cmd()",
        1,
        Decimal("1234.50"),
        Decimal("1E+2"),
        datetime(2026, 6, 30, 16, 0, tzinfo=UTC),
        date(2026, 7, 1),
        None,
        gettext_lazy("Yes"),
        'a,b\n"c"',
    ]
    response = download("orders", "csv", ["h"] * len(row), [row])
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = csv_rows(response)
    assert rows[1] == ["'=cmd()", "1", "1234.50", "100", "2026-07-01 00:00:00", "2026-07-01", "", "Yes", 'a,b\n"c"']


def test_the_file_is_named_in_ascii_and_exactly():
    response = download("订单 orders", "xlsx", ["h"], [])
    assert response["Content-Disposition"] == (
        "attachment; filename=\"orders.xlsx\"; filename*=UTF-8''%E8%AE%A2%E5%8D%95%20orders.xlsx"
    )
    body(response)
    assert download("退款", "csv", ["h"], [])["Content-Disposition"].startswith('attachment; filename="export.csv";')


def test_a_streamed_csv_is_written_in_the_language_of_the_request():
    def rows():
        for _ in range(3):
            yield [gettext_lazy("Yes"), str(gettext_lazy("No"))]

    with translation.override("zh-hans"):
        response = download("orders", "csv", [gettext_lazy("state")], rows())
    # The server reads the stream after the view returned, in another language.
    with translation.override("en"):
        found = csv_rows(response)
    assert found == [["状态"], *[["是", "否"]] * 3]


def test_xlsx_cells_keep_their_types_text_stays_text_and_the_header_is_bold_and_frozen():
    row = [
        '=HYPERLINK("http://x")',
        "#N/A",
        "bell\x07 and tab\tinside",
        7,
        Decimal("0.5"),
        datetime(2026, 6, 30, 16, 0, tzinfo=UTC),
        date(2026, 7, 1),
        None,
        "",
        "劳力士 潜航者型 黑水鬼 116610LN",
    ]
    response = download("orders", "xlsx", [f"column {n}" for n in range(len(row))], [row])
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert int(response["Content-Length"]) > 0
    found = sheet(response)
    cells = list(found[2])
    assert [(c.data_type, c.value) for c in cells[:4]] == [
        ("s", '=HYPERLINK("http://x")'),
        ("s", "#N/A"),
        ("s", "bell and tab\tinside"),
        ("n", 7),
    ]
    assert (cells[4].data_type, cells[4].value, cells[4].number_format) == ("n", 0.5, "#,##0.0")
    assert (cells[5].value, cells[5].number_format) == (datetime(2026, 7, 1, 0, 0), "yyyy-mm-dd hh:mm:ss")
    assert (cells[6].value, cells[6].number_format) == (datetime(2026, 7, 1), "yyyy-mm-dd")
    assert cells[7].value is None and cells[8].value is None
    assert all(c.font.b for c in found[1]) and found.freeze_panes == "A2"
    widths = {letter: dimension.width for letter, dimension in found.column_dimensions.items()}
    # A Chinese title is wider than its count of characters.
    assert widths["J"] > len(row[9]) + 2 and widths["D"] < widths["J"]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A temporary directory of this test's own, for every temporary file."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_an_xlsx_that_fails_half_way_leaves_no_file_behind(scratch):
    def rows():
        yield from ([n] for n in range(1000))
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        download("orders", "xlsx", ["h"], rows())
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_streams_and_closes_its_file(scratch, fmt):
    response = download("orders", fmt, ["n", "text"], ([n, f"order {n}"] for n in range(30_000)))
    assert response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) > 1
    close(response)
    if fmt == "xlsx":
        assert response.file_to_stream.closed
    assert list(scratch.iterdir()) == []
