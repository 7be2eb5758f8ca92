"""Benchmark of the rules' replay on PostgreSQL (SPEC §8: 30 days over
100,000 orders ≤ 5 min).

    python bench/replay.py [--orders 100000] [--days 75] [--period 30] [--rebuild] [--by-rule]

The history is ``bench/durations.py``'s (its module docstring says what is
in it), built once in a database of its own (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_replay) and reused while it
matches: ``--orders`` orders paid over ``--days`` days up to the build's hour,
so that the ``--period`` replayed days (the last ones) have weeks of history
before them, from which the replay computes each day's stage durations. What
matters here of it:

- every order's ``create`` event carries the whole order and each later event
  the fields its step changed, so the events alone rebuild every order (the
  build checks every ``orders_order`` row against the fold of its events);
- providers of different pace: the two slow ones (7 and 9 times the usual
  time over each stage) have orders forecast to miss, and some that do;
- orders auto-refunded at their deadline (an ``expire`` event to
  ``auto_refunded`` dated at the deadline, as ``orders.expiry`` writes it);
- split groups of two (an ``orders_splitgroup`` row), a fifth of them ending
  with a second logistics fee (two ``orders_feecharge`` rows of that kind in
  the group, the merchant not having chosen B);
- most orders finishing well, the last days' still open.

The replay (``risks.replay.replay(start, end, cfg)``, the thresholds as they
stand, ``risks.replay.thresholds({})``) runs in a process of its own, as a
worker would run it: wall time, peak resident memory (``ru_maxrss`` right
after the replay; what Django holds before it is shown too), the hours
replayed and orders in play, and the replay's own headline: the losses, the
share caught at least 24 hours before the deadline with and without
``forecast_miss``, and the per-rule table.

Beside it, in the same process right after, three floors:

- **rebuild only**: the same replay with no rule at all (``risks.rules.RULES``
  emptied for that run): choosing the orders in play, the stage durations of
  each day, the temporary tables, each hour's events added and folded into
  their orders: what a replay costs before any rule runs;
- **log only**: the bare database replaying the same hours' events: the
  events in play copied to a temporary table (untimed), then each hour one
  ``INSERT … SELECT`` of that hour's events into an empty copy of the event
  table and one ``SELECT`` of them, as the replay reads them;
- **one sweep × hours**: every rule evaluated once on the live tables at the
  period's end (with the stage durations refreshed for that moment), times
  the hours replayed: what evaluating the rules hour by hour would cost if
  every hour cost what one sweep's rules cost on the whole database.

``--by-rule`` replays once more with each rule's evaluation timed (the
seconds each rule took over all the hours).
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import durations  # noqa: E402
from durations import _setup, peak_mb, prepare, run_child  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_replay"
HOUR = datetime.timedelta(hours=1)


def _period(now_text, period_days):
    end = datetime.datetime.fromisoformat(now_text)
    return end - datetime.timedelta(days=period_days), end


def headline(report):
    """What the replay says, as plain values."""
    outcomes = {}
    for loss in report.losses:
        outcomes[loss.outcome] = outcomes.get(loss.outcome, 0) + 1
    return {
        "hours": report.hours,
        "orders": report.orders,
        "losses": len(report.losses),
        "outcomes": outcomes,
        "caught": sum(1 for loss in report.losses if loss.caught_at is not None),
        "share": report.share_caught(),
        "share_without": report.share_caught(with_forecast=False),
        "rules": report.per_rule(),
    }


def no_rules():
    """A context in which the replay runs without any rule."""
    import contextlib

    from risks import rules

    @contextlib.contextmanager
    def emptied():
        kept = rules.RULES
        rules.RULES = MappingProxyType({})
        try:
            yield
        finally:
            rules.RULES = kept

    return emptied()


def timed_rules(seconds):
    """A context in which each rule's evaluation adds its time to ``seconds[rule]``."""
    import contextlib
    import dataclasses

    from risks import rules

    def timing(code, evaluate):
        def run(ctx, orders=None):
            started = time.perf_counter()
            try:
                return evaluate(ctx, orders)
            finally:
                seconds[code] = seconds.get(code, 0.0) + time.perf_counter() - started

        return run

    @contextlib.contextmanager
    def wrapped():
        kept = rules.RULES
        rules.RULES = MappingProxyType(
            {code: dataclasses.replace(spec, evaluate=timing(str(code), spec.evaluate)) for code, spec in kept.items()}
        )
        try:
            yield
        finally:
            rules.RULES = kept

    return wrapped()


# The orders in play as the replay chooses them (created by the end, not
# finished by the start, and the other orders of their split groups), and
# their events up to the end.
_IN_PLAY = """
CREATE TEMP TABLE bench_source AS
WITH playing AS (
  SELECT o.id, o.trade_no, o.sku FROM orders_order o
  WHERE EXISTS (SELECT 1 FROM orders_orderevent e WHERE e.order_id = o.id AND e.action = 'create'
                AND e.occurred_at <= %(end)s)
    AND NOT EXISTS (SELECT 1 FROM orders_orderevent e WHERE e.order_id = o.id
                    AND e.to_state IN ('completed', 'returned', 'refunded', 'auto_refunded')
                    AND e.occurred_at <= %(start)s)
), members AS (
  SELECT id FROM playing
  UNION
  SELECT o.id FROM orders_order o JOIN orders_splitgroup g ON g.trade_no = o.trade_no AND g.sku = o.sku
  WHERE (o.trade_no, o.sku) IN (SELECT trade_no, sku FROM playing)
)
SELECT e.* FROM orders_orderevent e JOIN members m ON m.id = e.order_id WHERE e.occurred_at <= %(end)s
"""


def log_floor(start, end):
    """Each hour's events inserted into an empty event table and read back,
    in a transaction rolled back; returns the seconds and the events."""
    from django.db import connection, transaction

    class Undo(Exception):
        pass

    bounds = "FROM bench_source WHERE occurred_at > %s AND occurred_at <= %s"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_IN_PLAY, {"start": start, "end": end})
            cursor.execute("CREATE INDEX ON bench_source (occurred_at)")
            cursor.execute("CREATE TEMP TABLE bench_log (LIKE orders_orderevent INCLUDING ALL)")
            started = time.perf_counter()
            cursor.execute(
                f"INSERT INTO bench_log SELECT * {bounds}", [datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC), start]
            )
            moment, events = start, 0
            while moment < end:
                following = min(moment + HOUR, end)
                cursor.execute(f"INSERT INTO bench_log SELECT * {bounds}", [moment, following])
                cursor.execute(
                    f"SELECT order_id, seq, action, to_state, payload, occurred_at {bounds} ORDER BY order_id, seq",
                    [moment, following],
                )
                events += len(cursor.fetchall())
                moment = following
            took = time.perf_counter() - started
            raise Undo
    except Undo:
        pass
    return took, events


def sweep_floor(end, cfg):
    """Every rule evaluated once on the live tables at ``end``; the seconds."""
    from orders import durations
    from risks import rules

    durations.refresh(end)
    ctx = rules.Context.build(end, cfg)
    started = time.perf_counter()
    hits = sum(len(spec.evaluate(ctx)) for spec in rules.RULES.values())
    return time.perf_counter() - started, hits


def child(now_text, period_days, by_rule):
    """One measured replay (in a process of its own), then the floors."""
    _setup(os.environ["BENCH_DATABASE_URL"])
    from risks.replay import replay, thresholds

    start, end = _period(now_text, period_days)
    cfg, _applied = thresholds({})
    before = peak_mb()
    started = time.perf_counter()
    report = replay(start, end, cfg)
    wall = time.perf_counter() - started
    after = peak_mb()
    found = {"wall": wall, "rss_before": before, "rss_after": after, **headline(report)}

    started = time.perf_counter()
    with no_rules():
        bare = replay(start, end, cfg)
    found["rebuild"] = time.perf_counter() - started
    found["rebuild_hours"] = bare.hours
    found["log"], found["log_events"] = log_floor(start, end)
    found["sweep"], found["sweep_hits"] = sweep_floor(end, cfg)
    if by_rule:
        seconds = {}
        started = time.perf_counter()
        with timed_rules(seconds):
            replay(start, end, cfg)
        found["by_rule_wall"] = time.perf_counter() - started
        found["by_rule"] = seconds
    durations.report(found)


def show(got, peak):
    """Print the figures of one run."""
    hours = got["hours"]
    minutes = got["wall"] / 60
    print(
        f"replay: wall {got['wall']:.1f} s ({minutes:.2f} min)   peak RSS {got['rss_after']:.1f} MB "
        f"(Django before it: {got['rss_before']:.1f} MB; the process to its end, floors included: {peak:.1f} MB)"
    )
    print(f"        {hours} hours replayed, {got['orders']:,} orders in play")
    outcomes = ", ".join(f"{n:,} {kind}" for kind, n in sorted(got["outcomes"].items()))
    share = "n/a" if got["share"] is None else f"{got['share']:.1%}"
    without = "n/a" if got["share_without"] is None else f"{got['share_without']:.1%}"
    print(f"        losses {got['losses']:,} ({outcomes}); caught before the deadline {got['caught']:,}")
    print(f"        caught ≥ 24 h before the deadline: {share} with forecast_miss, {without} without")
    print(
        f"floors: rebuild only (no rule) {got['rebuild']:.1f} s; log only (each hour's events inserted and read) "
        f"{got['log']:.1f} s for {got['log_events']:,} events; one sweep's rules on the live tables "
        f"{got['sweep']:.3f} s ({got['sweep_hits']:,} hits) × {hours} hours = {got['sweep'] * hours:.1f} s"
    )
    header = (
        f"{'rule':<27} {'opened':>7} {'false alarms':>12} {'caught first':>12} "
        f"{'median lead h':>13} {'least lead h':>12}"
    )
    print(f"\n{header}")
    print("-" * len(header))
    for row in got["rules"]:
        median = "" if row["median_lead_hours"] is None else f"{row['median_lead_hours']:.1f}"
        least = "" if row["least_lead_hours"] is None else f"{row['least_lead_hours']:.1f}"
        print(
            f"{row['rule']:<27} {row['opened']:>7,} {row['false_alarms']:>12,} {row['caught_first']:>12,} "
            f"{median:>13} {least:>12}"
        )
    if "by_rule" in got:
        total = sum(got["by_rule"].values())
        print(
            f"\nseconds per rule over the {hours} hours "
            f"(a replay with each evaluation timed: {got['by_rule_wall']:.1f} s):"
        )
        for code, seconds in sorted(got["by_rule"].items(), key=lambda item: -item[1]):
            print(f"  {code:<27} {seconds:7.1f} s")
        print(f"  {'all rules':<27} {total:7.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=75, help="the days the orders were paid over")
    parser.add_argument("--period", type=int, default=30, help="the days replayed: the last of the history")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="build the history again even if it matches")
    parser.add_argument("--by-rule", action="store_true", help="replay once more, timing each rule")
    parser.add_argument("--child", metavar="NOW", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(DEFAULT_URL, args.orders, args.days, args.rebuild)
        return
    if args.child:
        child(args.child, args.period, args.by_rule)
        return

    script = Path(__file__)
    size = ["--orders", str(args.orders), "--days", str(args.days)]
    found, _peak = run_child(script, ["--prepare", *size, *(["--rebuild"] if args.rebuild else [])])
    os.environ["BENCH_DATABASE_URL"] = found["url"]
    start, end = _period(found["now"], args.period)
    print(
        f"\n{found['orders']:,} orders, {found['events']:,} events over {found['days']} days; replaying "
        f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC ({args.period} days), thresholds as they stand; "
        f"each run a process of its own\n"
    )
    arguments = ["--child", found["now"], "--period", str(args.period)]
    if args.by_rule:
        arguments.append("--by-rule")
    for run in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"run {run}")
        got, peak = run_child(script, arguments)
        show(got, peak)
    with open("/proc/loadavg") as loadavg:
        print(f"\nload average: {loadavg.read().strip()}")


if __name__ == "__main__":
    main()
