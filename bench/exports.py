"""Benchmark of the order list's exports on PostgreSQL: 100,000 orders as XLSX
and as CSV, through the real view, beside the floor of each format.

    python bench/exports.py [--orders 100000] [--runs 3] [--rebuild]

Builds the orders with ``bench/sweep.py``'s ``start()`` (reused when the
count matches), in a database of its own (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_exports).

Each measurement runs in a fresh process of its own, so that its peak
resident memory (the process's high-water mark, ``ru_maxrss``) is its own:

- the export: ``GET /orders/?finished=on&export=<format>`` as the platform's
  operator (every order) through Django's test ``Client``, in-process, with
  every middleware of the settings and ``DEBUG`` off; the streamed answer is
  read chunk by chunk and written to a temporary file, as a browser saves a
  download. Timed: the whole answer, and its first byte.
- its floor: the same rows, already in memory as plain tuples (read from the
  database and put into words before the clock starts), written with
  openpyxl's write-only workbook to a temporary file, or with ``csv.writer``.

Peak memory is given as the process's high-water mark and as what the
measured step added to the mark the process had reached before it (after
Django's start, a warm-up export of one order, and for the floor the tuples).
After the runs the first file is read back and its rows counted.
"""

import argparse
import csv
import datetime
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_exports")

from sweep import start  # noqa: E402

OPERATOR = "operator"
FORMATS = ("xlsx", "csv")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_rows(file, fmt) -> int:
    """The data rows of a written file (its header row not counted)."""
    file.seek(0)
    if fmt == "csv":
        return sum(1 for _ in csv.reader(io.TextIOWrapper(file, encoding="utf-8-sig", newline=""))) - 1
    from openpyxl import load_workbook

    workbook = load_workbook(file, read_only=True)
    rows = sum(1 for _ in workbook.active.iter_rows(values_only=True)) - 1
    workbook.close()
    return rows


def ready(orders):
    """Django on the benchmark database (built there the first time)."""
    start(orders, False, 1.0, datetime.datetime.now(datetime.UTC))
    from django.conf import settings

    settings.DEBUG = False
    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def measure_view(fmt, runs) -> dict:
    """The export through the view, ``runs`` times, each saved to a temporary file."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(get_user_model().objects.get(username=OPERATOR))
    url = reverse("orders:list")

    def export(query, file):
        file.seek(0)
        file.truncate()
        started = time.perf_counter()
        response = client.get(url, query)
        first = None
        for chunk in response.streaming_content:
            if first is None:
                first = time.perf_counter() - started
            file.write(chunk)
        response.close()
        wall = time.perf_counter() - started
        if response.status_code != 200 or not response.streaming:
            raise SystemExit(f"the export answered {response.status_code}")
        return wall, first

    with tempfile.TemporaryFile() as file:
        export({"finished": "on", "q": "B00000001", "export": fmt}, file)  # warm up: imports, connection
        before = peak_mb()
        timings = [export({"finished": "on", "export": fmt}, file) for _ in range(runs)]
        peak = peak_mb()
        size = file.tell()
        rows = count_rows(file, fmt)
    walls, firsts = zip(*timings, strict=True)
    return {
        "walls": walls,
        "first": statistics.median(firsts),
        "rows": rows,
        "bytes": size,
        "peak": peak,
        "added": peak - before,
    }


def plain_rows() -> list[tuple]:
    """The export's rows of every order as plain tuples, in words, times without a zone (as a sheet holds them)."""
    from django.utils import timezone, translation

    from orders.exports import COLUMNS, rows
    from orders.models import Order

    zone = timezone.get_default_timezone()
    with translation.override("zh-hans"):
        found = [
            tuple(v.astimezone(zone).replace(tzinfo=None) if isinstance(v, datetime.datetime) else v for v in row)
            for row in rows(Order.objects.select_related("merchant", "provider").order_by(), COLUMNS)
        ]
        headers = tuple(str(column.header) for column in COLUMNS)
    return [headers, *found]


def measure_floor(fmt, runs) -> dict:
    """The same rows, in memory already, written by the bare library."""
    tuples = plain_rows()
    from openpyxl import Workbook

    def write(file, rows):
        file.seek(0)
        file.truncate()
        started = time.perf_counter()
        if fmt == "csv":
            text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
            csv.writer(text).writerows(rows)
            text.flush()
            text.detach()
        else:
            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet()
            for row in rows:
                sheet.append(row)
            workbook.save(file)
        return time.perf_counter() - started

    with tempfile.TemporaryFile() as file:
        write(file, tuples[:100])  # warm up
        before = peak_mb()
        walls = [write(file, tuples) for _ in range(runs)]
        peak = peak_mb()
        size = file.seek(0, io.SEEK_END)
        rows = count_rows(file, fmt)
    return {"walls": walls, "rows": rows, "bytes": size, "peak": peak, "added": peak - before}


def child(args):
    ready(args.orders)
    measure = {"view": measure_view, "floor": measure_floor}[args.child]
    print(json.dumps(measure(args.format, args.runs)))


def run_child(kind, fmt, args) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--format", fmt, "--orders", str(args.orders)]
    command += ["--runs", str(args.runs)]
    found = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(found.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the orders even if the count matches")
    parser.add_argument("--child", choices=["view", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=FORMATS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    start(args.orders, args.rebuild, 1.0, datetime.datetime.now(datetime.UTC))
    results = {fmt: (run_child("view", fmt, args), run_child("floor", fmt, args)) for fmt in FORMATS}

    print(f"\n{args.orders:,} orders exported as {OPERATOR} (every order): median of {args.runs} runs")
    header = (
        f"{'':<12} {'rows':>8} {'wall s':>7} {'rows/s':>8} {'1st byte s':>10} {'MB':>6}"
        f" {'peak RSS MB':>11} {'added MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for fmt, (view, floor) in results.items():
        for label, found in ((f"{fmt} view", view), (f"{fmt} floor", floor)):
            wall = statistics.median(found["walls"])
            first = f"{found['first']:>10.2f}" if "first" in found else f"{'':>10}"
            print(
                f"{label:<12} {found['rows']:>8,} {wall:>7.2f} {found['rows'] / wall:>8,.0f} {first}"
                f" {found['bytes'] / 2**20:>6.1f} {found['peak']:>11.1f} {found['added']:>8.1f}"
            )
    with open("/proc/loadavg") as loadavg:
        print(f"\nload average: {loadavg.read().strip()}")
    print(
        "view: GET /orders/?finished=on&export=<format> through every middleware, the answer saved to a file.\n"
        "floor: the same rows as plain tuples already in memory, written by openpyxl (write-only) or csv.writer.\n"
        "peak RSS: the process's high-water mark; added: what the measured runs added to it."
    )


if __name__ == "__main__":
    main()
