"""Benchmark of the order import on PostgreSQL (SPEC §8: ≥ 2,000 rows/s, ≤ 200 MB for 100,000 rows).

    python bench/imports.py [--rows 100000] [--orders 1000000] [--formats csv,xlsx]

Opens (and on first use builds, as bench/sweep.py does) a database of
``--orders`` orders (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_imports), writes a file of
``--rows`` new orders in each format (Chinese titles, the zh-hans column
headings, one order in ten sharing its trade and SKU with the next, times as
Excel writes them), and imports it with ``manage.py import_orders`` in a
process of its own: wall time, rows/s and that process's peak resident memory.
Each file is then imported again (every row unchanged), the case a person
re-uploading the same file meets.

Beside each figure, the floor on this box in the same run: a plain ``COPY``
of the same rows into a table of the same columns (what PostgreSQL takes at
best), and reading the file alone (csv / calamine).
"""

import argparse
import csv
import datetime
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import ROOT, start

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_imports"


def table(rows, prefix, merchant, provider):
    paid = datetime.datetime(2026, 11, 20, 9, 30)
    for n in range(rows):
        trade = n - 1 if n % 10 == 1 else n  # one order in ten splits its trade and SKU with the one before
        yield [
            f"{prefix}-{n:07d}",
            f"T{prefix}-{trade:07d}",
            merchant,
            provider,
            f"SKU-{trade % 5000:05d}",
            f"劳力士 潜航者 116610LN 第{n}件",
            str(1 + n % 3),
            f"{(n * 37) % 90000 + 100}.50",
            (paid + datetime.timedelta(minutes=n % 5000)).strftime("%Y-%m-%d %H:%M:%S"),
            (paid + datetime.timedelta(days=10, minutes=n % 5000)).strftime("%Y/%m/%d %H:%M"),
        ]


def write_csv(path, headings, rows):
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(headings)
        writer.writerows(rows)


def write_xlsx(path, headings, rows):
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(headings)
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def run_import(path):
    """``manage.py import_orders`` in a process of its own: wall seconds, its
    peak RSS in MB (``wait4`` reports that child's own), its summary line."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(
            [sys.executable, "manage.py", "import_orders", str(path), "--language", "en"],
            cwd=ROOT,
            # Production settings: no query log (DEBUG off).
            env={**os.environ, "LOG_LEVEL": "WARNING", "DEBUG": "0", "SECRET_KEY": "bench-" + "x" * 50},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if child.returncode != 0:
        sys.exit(f"import failed:\n{output}")
    summary = next(line for line in output.splitlines() if "rows —" in line)
    return wall, usage.ru_maxrss / 1024, summary


def forget(prefix):
    """Remove the imported orders again, so the next run starts from the same database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM orders_orderevent WHERE order_id IN (SELECT id FROM orders_order WHERE order_no LIKE %s)",
            [prefix + "-%"],
        )
        cursor.execute("DELETE FROM orders_order WHERE order_no LIKE %s", [prefix + "-%"])
        cursor.execute("DELETE FROM orders_splitgroup WHERE trade_no LIKE %s", ["T" + prefix + "-%"])
        cursor.execute("DELETE FROM orders_importrefusal")
        cursor.execute("DELETE FROM orders_importjob")
        cursor.execute("VACUUM ANALYZE orders_order")
        cursor.execute("VACUUM ANALYZE orders_orderevent")


def copy_floor(rows):
    """A plain COPY of the same rows into a scratch table of the same columns."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE import_floor (order_no varchar(64), trade_no varchar(64), merchant varchar(32), "
            "provider varchar(32), sku varchar(64), item_title varchar(300), quantity integer, "
            "amount numeric(12, 2), paid_at timestamptz, auto_confirm_at timestamptz)"
        )
        started = time.perf_counter()
        with cursor.cursor.copy("COPY import_floor FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        wall = time.perf_counter() - started
        cursor.execute("DROP TABLE import_floor")
    return wall


def read_floor(path, file_format):
    """Reading the file alone, as the import's parsers do."""
    started = time.perf_counter()
    if file_format == "csv":
        with open(path, encoding="utf-8-sig", newline="") as source:
            for _row in csv.reader(source):
                pass
    else:
        from python_calamine import CalamineWorkbook

        for _row in CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).iter_rows():
            pass
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,xlsx")
    args = parser.parse_args()

    os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_URL)
    start(args.orders, False, 1.0, datetime.datetime.now(datetime.UTC))
    os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
    from orders import imports
    from portal.choices import OrganisationKind
    from portal.models import Organisation

    merchant = Organisation.objects.filter(kind=OrganisationKind.MERCHANT).values_list("code", flat=True).first()
    provider = Organisation.objects.filter(kind=OrganisationKind.PROVIDER).values_list("code", flat=True).first()
    headings = imports.headings("zh-hans")
    print(f"{args.rows:,} rows into {args.orders:,} orders; floors measured in the same run")
    with tempfile.TemporaryDirectory() as folder:
        for file_format in args.formats.split(","):
            prefix = uuid.uuid4().hex[:6].upper()
            path = Path(folder) / f"orders.{file_format}"
            (write_csv if file_format == "csv" else write_xlsx)(
                path, headings, table(args.rows, prefix, merchant, provider)
            )
            size = path.stat().st_size / 1024 / 1024
            floor_copy = copy_floor(
                [
                    [r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7], r[8] + "+08", r[9].replace("/", "-") + "+08"]
                    for r in table(args.rows, prefix + "F", merchant, provider)
                ]
            )
            floor_read = read_floor(path, file_format)
            try:
                for label in ("new", "again"):
                    wall, peak, line = run_import(path)
                    print(
                        f"{file_format:<4} {label:<5} {size:5.1f} MB  wall {wall:6.1f} s  "
                        f"{args.rows / wall:7,.0f} rows/s  "
                        f"peak RSS {peak:6.1f} MB   | floor: COPY {args.rows / floor_copy:9,.0f} rows/s, "
                        f"read only {args.rows / floor_read:9,.0f} rows/s   ({line})"
                    )
            finally:
                forget(prefix)


if __name__ == "__main__":
    main()
