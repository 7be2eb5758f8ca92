"""Importing orders from a spreadsheet: encodings, idempotence, refused rows,
whole-file refusals, the command, and taking over an interrupted import."""

import codecs
import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone, translation
from openpyxl import Workbook, load_workbook

from orders import imports
from orders.choices import Action, ImportStatus, OrderState
from orders.models import ImportJob, ImportRefusal, Order, OrderEvent, SplitGroup
from portal.choices import EventSource

pytestmark = pytest.mark.django_db

HEADINGS = list(imports.REQUIRED)
# One payment time for every row any test builds, so the same rows built
# twice are the same rows (a clock read per call could cross a second).
PAID = timezone.localtime().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def rows(count=5, start=1, **overrides):
    """``count`` rows of the conftest organisations, as a spreadsheet holds them."""
    paid = PAID
    made = []
    for n in range(start, start + count):
        row = {
            "order_no": f"IMP-{n:05d}",
            "trade_no": f"T-IMP-{n:05d}",
            "merchant": "M-1",
            "provider": "P-1",
            "sku": "SKU-1",
            "item_title": f"百达翡丽 5711 #{n}",
            "quantity": "1",
            "amount": f"{1000 + n}.50",
            "paid_at": paid.strftime("%Y-%m-%d %H:%M:%S"),
            "auto_confirm_at": (paid + timedelta(days=10)).strftime("%Y/%m/%d %H:%M"),
        }
        row.update(overrides)
        made.append(row)
    return made


def as_csv(table, headings=HEADINGS, encoding="utf-8", bom=False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headings)
    for row in table:
        writer.writerow([row.get(name, "") for name in imports.REQUIRED])
    return (codecs.BOM_UTF8 if bom else b"") + out.getvalue().encode(encoding)


def as_xlsx(table, headings=HEADINGS) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(headings)
    for row in table:
        sheet.append([row.get(name, "") for name in imports.REQUIRED])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def import_file(content, platform, name="orders.csv", language="en"):
    job = imports.start(content, name, organisation=platform, language=language)
    return imports.run(job.pk)


def created_orders():
    return sorted(
        Order.objects.values_list("order_no", "trade_no", "item_title", "amount", "paid_at", "auto_confirm_at")
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda t: as_csv(t), id="utf-8"),
        pytest.param(lambda t: as_csv(t, bom=True), id="utf-8-bom"),
        pytest.param(lambda t: as_csv(t, encoding="gb18030"), id="gb18030"),
        pytest.param(lambda t: as_xlsx(t), id="xlsx"),
    ],
)
def test_the_same_orders_in_every_encoding_and_format(content, platform, merchant_org, provider_org):
    table = rows(4)
    job = import_file(content(table), platform)

    assert (job.status, job.total, job.done, job.created, job.unchanged, job.refused) == (
        ImportStatus.DONE,
        4,
        4,
        4,
        0,
        0,
    )
    first = Order.objects.get(order_no="IMP-00001")
    assert first.item_title == "百达翡丽 5711 #1"
    assert first.amount == Decimal("1001.50")
    assert first.merchant == merchant_org and first.provider == provider_org
    # Times without an offset are Shanghai's, as the spreadsheet showed them.
    shown = timezone.localtime(first.paid_at).strftime("%Y-%m-%d %H:%M:%S")
    assert shown == table[0]["paid_at"]
    assert timezone.localtime(first.auto_confirm_at).strftime("%Y/%m/%d %H:%M") == table[0]["auto_confirm_at"]
    event = first.events.get()
    assert (event.action, event.source, event.actor_organisation) == (Action.CREATE, EventSource.IMPORT, platform)


def test_every_format_makes_identical_orders(platform, merchant_org, provider_org):
    """Each encoding imports under its own order numbers; the orders are alike but for them."""
    seen = []
    for start, encode in enumerate((as_csv, lambda t: as_csv(t, bom=True), gb18030, as_xlsx)):
        table = rows(3, start=100 * start)
        import_file(encode(table), platform)
        made = Order.objects.filter(order_no__in=[r["order_no"] for r in table]).order_by("order_no")
        seen.append([(o.item_title.split("#")[0], o.amount - 100 * start, o.paid_at, o.auto_confirm_at) for o in made])
    assert len(seen[0]) == 3 and all(s == seen[0] for s in seen)


def gb18030(table):
    return as_csv(table, encoding="gb18030")


def test_chinese_headings_are_read(platform, merchant_org, provider_org):
    content = as_csv(rows(2), headings=imports.headings("zh-hans"), encoding="gb18030")

    job = import_file(content, platform)

    assert job.created == 2
    assert imports.headings("zh-hans") != imports.headings("en")


def test_importing_the_same_file_again_creates_nothing(platform, merchant_org, provider_org):
    content = as_xlsx(rows(6))
    import_file(content, platform)
    before = (Order.objects.count(), OrderEvent.objects.count())

    again = import_file(content, platform, name="again.xlsx")

    assert (again.created, again.unchanged, again.refused) == (0, 6, 0)
    assert (Order.objects.count(), OrderEvent.objects.count()) == before


def test_three_bad_rows_are_refused_with_row_column_and_reason_and_the_rest_imported(
    platform, merchant_org, provider_org
):
    table = rows(10)
    table[1]["amount"] = "twelve"
    table[4]["merchant"] = "M-NOBODY"
    table[7]["paid_at"] = "yesterday"

    job = import_file(as_csv(table), platform)

    assert (job.created, job.refused) == (7, 3)
    assert not Order.objects.filter(order_no__in=["IMP-00002", "IMP-00005", "IMP-00008"]).exists()
    refused = list(job.refusals.values_list("row", "column", "reason"))
    assert [(row, column) for row, column, _reason in refused] == [(3, "amount"), (6, "merchant"), (9, "paid_at")]
    assert "M-NOBODY" in refused[1][2]

    headings, lines = imports.refused_rows(job)
    lines = list(lines)
    assert headings[: len(HEADINGS)] == HEADINGS and len(lines) == 3
    assert lines[0][:10] == [table[1][name] for name in imports.REQUIRED]
    assert "Row 3" in lines[0][-1] and "amount" in lines[0][-1]


def test_the_refused_rows_file_fixed_imports_the_rest(platform, merchant_org, provider_org, tmp_path):
    table = rows(5)
    table[2]["quantity"] = "0"
    source = tmp_path / "orders.xlsx"
    source.write_bytes(as_xlsx(table))
    refused = tmp_path / "refused.xlsx"

    with pytest.raises(CommandError) as failed:
        call_command("import_orders", str(source), "--refused", str(refused), "--language", "en")
    assert failed.value.returncode == 1

    sheet = load_workbook(refused, read_only=True).active
    lines = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert lines[0][-1] == "Why refused" and len(lines) == 2
    lines[1][HEADINGS.index("quantity")] = 2
    fixed = Workbook()
    for line in lines:
        fixed.active.append(line)
    fixed.save(tmp_path / "fixed.xlsx")

    call_command("import_orders", str(tmp_path / "fixed.xlsx"), "--language", "en")
    assert Order.objects.get(order_no="IMP-00003").quantity == 2
    assert Order.objects.count() == 5


def test_a_refusal_is_written_in_the_language_of_who_imported(platform, merchant_org, provider_org):
    table = rows(1, merchant="M-NOBODY")
    job = import_file(as_csv(table), platform, language="zh-hans")
    reason = job.refusals.get().reason
    with translation.override("zh-hans"):
        assert reason != import_file(as_csv(table), platform, language="en").refusals.get().reason


def test_a_row_that_exists_with_other_details_is_refused_not_changed(platform, merchant_org, provider_org):
    import_file(as_csv(rows(1)), platform)
    job = import_file(as_csv(rows(1, item_title="Something else")), platform)
    assert job.refused == 1
    assert job.refusals.get().column == "order_no"
    assert Order.objects.get().item_title == "百达翡丽 5711 #1"


def test_an_extended_deadline_does_not_make_the_row_differ(platform, merchant_org, provider_org):
    from orders import workflow
    from portal.actors import Actor

    content = as_csv(rows(1))
    import_file(content, platform)
    order = Order.objects.get()
    workflow.perform(order, Action.EXTEND_DEADLINE, Actor.of_organisation(platform), hours=24)

    assert import_file(content, platform).unchanged == 1


def test_orders_of_one_trade_and_sku_in_one_file_form_a_split_group(platform, merchant_org, provider_org):
    table = rows(3, trade_no="T-SPLIT")
    import_file(as_csv(table), platform)
    assert SplitGroup.objects.filter(trade_no="T-SPLIT", sku="SKU-1", closed_at__isnull=True).count() == 1


def test_a_trade_of_two_merchants_is_refused_for_the_second(platform, merchant_org, merchant2_org, provider_org):
    table = rows(2, trade_no="T-SHARED")
    table[1]["merchant"] = "M-2"
    job = import_file(as_csv(table), platform)
    assert (job.created, job.refused) == (1, 1)
    assert job.refusals.get().column == "trade_no"


def test_a_merchant_imports_its_own_orders_only(platform, merchant_org, merchant2_org, provider_org, merchant):
    table = rows(3)
    table[2]["merchant"] = "M-2"
    job = imports.run(imports.start(as_csv(table), "mine.csv", user=merchant, language="en").pk)
    assert (job.created, job.refused) == (2, 1)
    assert job.refusals.get().column == "merchant"
    assert set(Order.objects.values_list("merchant__code", flat=True)) == {"M-1"}


def test_formula_cells_are_imported_as_text(platform, merchant_org, provider_org):
    title = '=HYPERLINK("http://evil.example","click")'
    import_file(as_csv(rows(1, item_title=title)), platform)
    assert Order.objects.get().item_title == title
    # A file this portal exported (the cell escaped) imports the same text.
    import_file(as_csv(rows(1, start=2, item_title="'" + title)), platform)
    assert Order.objects.get(order_no="IMP-00002").item_title == title


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(lambda: b"", "empty", id="empty"),
        pytest.param(lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "neither text", id="binary"),
        pytest.param(lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, ".xls", id="old-excel"),
        pytest.param(lambda: as_xlsx(rows(3))[:700], "damaged or cut short", id="truncated-xlsx"),
        pytest.param(lambda: b"order_no,trade_no\nA,B\n", "Missing column", id="missing-column"),
        pytest.param(
            lambda: as_csv(rows(1), headings=[*HEADINGS[:-1], "deadline_at"]), "Unknown column", id="unknown-column"
        ),
        pytest.param(lambda: as_csv([], headings=HEADINGS), "no rows", id="no-rows"),
        pytest.param(lambda: as_csv(rows(1)).rstrip(b"\r\n") + b',"unclosed\n', "cut short", id="truncated-csv"),
    ],
)
def test_a_file_no_row_of_which_can_be_imported_is_refused_whole(content, says, platform):
    with translation.override("en"), pytest.raises(imports.FileRefused) as refused:
        imports.start(content(), "bad.csv", organisation=platform, language="en")
    assert says in str(refused.value)
    assert not ImportJob.objects.exists() and not Order.objects.exists()


def test_size_and_row_limits_are_said_before_anything_is_written(platform, settings):
    settings.IMPORT_MAX_ROWS = 3
    with translation.override("en"), pytest.raises(imports.FileRefused, match="at most 3"):
        imports.start(as_csv(rows(4)), "big.csv", organisation=platform)
    settings.IMPORT_MAX_BYTES = 1024
    with translation.override("en"), pytest.raises(imports.FileRefused, match="at most 0"):
        imports.start(as_csv(rows(40)), "big.csv", organisation=platform)
    assert not ImportJob.objects.exists()


def test_the_command_shows_a_summary_and_fails_when_a_row_was_refused(
    platform, merchant_org, provider_org, tmp_path, capsys
):
    table = rows(3)
    table[0]["sku"] = "has space"
    path = tmp_path / "orders.csv"
    path.write_bytes(as_csv(table, encoding="gb18030"))

    with pytest.raises(CommandError) as failed:
        call_command("import_orders", str(path), "--language", "en")

    out = capsys.readouterr().out
    assert "3 rows — 2 created, 0 unchanged (already there), 1 refused." in out
    assert "row 2: sku:" in out
    assert failed.value.returncode == 1

    path.write_bytes(as_csv(rows(3)))  # the row fixed
    call_command("import_orders", str(path), "--language", "en")
    assert "3 rows — 1 created, 2 unchanged (already there), 0 refused." in capsys.readouterr().out


def test_an_interrupted_import_is_resumed_where_it_stopped(platform, merchant_org, provider_org, settings, monkeypatch):
    """A worker dies after its second batch: another takes the job over once
    its heartbeat is stale and imports every row exactly once."""
    settings.IMPORT_BATCH_ROWS = 4
    job = imports.start(as_csv(rows(10)), "orders.csv", organisation=platform, language="en")

    class Died(Exception):
        pass

    def die_after_two_batches(current):
        if current.done >= 8:
            raise Died

    with pytest.raises(Died):
        imports.run(job.pk, progress=die_after_two_batches)
    job.refresh_from_db()
    assert (job.status, job.done, job.created) == (ImportStatus.RUNNING, 8, 8)
    assert imports.run(job.pk) is None  # its heartbeat is fresh: someone may still be on it

    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    resumed = imports.run(job.pk)

    assert (resumed.status, resumed.done, resumed.created, resumed.resumed) == (ImportStatus.DONE, 10, 10, 1)
    assert Order.objects.count() == 10 and OrderEvent.objects.count() == 10


def test_beat_hands_stalled_imports_to_a_worker(platform, settings, monkeypatch):
    sent = []
    monkeypatch.setattr(imports.run_import, "delay", sent.append)
    fresh = imports.start(as_csv(rows(1)), "a.csv", organisation=platform)
    stalled = imports.start(as_csv(rows(1)), "b.csv", organisation=platform)
    long_ago = timezone.now() - timedelta(minutes=5)
    ImportJob.objects.filter(pk=stalled.pk).update(status=ImportStatus.RUNNING, heartbeat_at=long_ago, lease="x")
    ImportJob.objects.filter(pk=fresh.pk).update(status=ImportStatus.RUNNING, heartbeat_at=timezone.now(), lease="y")

    assert imports.resume_stalled() == 1
    assert sent == [stalled.pk]
    assert settings.CELERY_BEAT_SCHEDULE["resume-stalled-imports"]["task"] == imports.resume_stalled.name


def test_import_refusals_never_repeat_for_a_row(platform, merchant_org, provider_org):
    job = import_file(as_csv(rows(2, amount="-1")), platform)
    assert ImportRefusal.objects.filter(job=job).count() == 2
    assert Order.objects.filter(state=OrderState.AWAITING_SHIPMENT).count() == 0


def test_excel_unicode_text_is_read(platform, merchant_org, provider_org):
    """Excel's "Unicode text": UTF-16 with its BOM, cells separated by tabs."""
    text = as_csv(rows(2)).decode().replace(",", "\t")
    job = import_file(text.encode("utf-16"), platform, name="orders.txt")
    assert (job.created, job.refused) == (2, 0)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_guides_sample_files_import_cleanly(language, platform, tmp_path, capsys):
    from django.conf import settings

    from tests.factories import OrganisationFactory

    for code, kind in (("M-DEMO-1", "merchant"), ("M-DEMO-2", "merchant"), ("P-DEMO-1", "provider")):
        OrganisationFactory(code=code, kind=kind)
    OrganisationFactory(code="P-DEMO-2", kind="provider")
    sample = settings.BASE_DIR / "docs" / "samples" / f"orders-{language}.csv"

    call_command("import_orders", str(sample), "--language", "en")

    assert "4 rows — 4 created, 0 unchanged (already there), 0 refused." in capsys.readouterr().out
    assert SplitGroup.objects.filter(trade_no="T2026113000002").exists()


def test_typed_workbook_cells_and_blank_rows(platform, merchant_org, provider_org):
    """Excel types its cells: a number for the order number and the amount, a
    date-time for the times. A blank row is skipped; row numbers stay the sheet's."""
    import datetime as dt

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADINGS)
    paid = dt.datetime(2026, 11, 30, 10, 15)
    sheet.append([2026113000001, "T-1", "M-1", "P-1", "SKU-1", "Watch", 1, 68500.5, paid, paid + timedelta(days=10)])
    sheet.append([None] * 10)
    sheet.append([2026113000002, "T-2", "M-1", "P-1", "SKU-1", "Watch", 0, 10, paid, paid + timedelta(days=10)])
    out = io.BytesIO()
    workbook.save(out)

    job = import_file(out.getvalue(), platform, name="typed.xlsx")

    assert (job.total, job.created, job.refused) == (2, 1, 1)
    order = Order.objects.get()
    assert order.order_no == "2026113000001" and order.amount == Decimal("68500.50")
    assert timezone.localtime(order.paid_at).replace(tzinfo=None) == paid
    assert job.refusals.get().row == 4  # the sheet's row, past the blank one


def test_an_import_that_stops_every_worker_is_given_up_and_says_so(platform, merchant_org, provider_org):
    job = imports.start(as_csv(rows(3)), "orders.csv", organisation=platform, language="en")
    long_ago = timezone.now() - timedelta(minutes=5)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, lease="dead", heartbeat_at=long_ago, resumed=imports.MAX_TAKEOVERS
    )

    assert imports.run(job.pk) is None

    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED and "given up" in job.failure
    assert not Order.objects.exists()
