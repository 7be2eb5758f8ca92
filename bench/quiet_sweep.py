"""Benchmark of the risk sweep when nothing is due, on the realistic history
(SPEC §8: ≤ 20 ms when nothing is due, over 1,000,000 orders).

    python bench/quiet_sweep.py [--runs 10] [--steady-runs 3] [--verbose]

``bench/sweep.py --stuck-percent 0`` measures a sweep with nothing due on
orders built straight in SQL, with no event, no fee and no case ever
written. This one measures it on ``bench/surfaces.py``'s database:
``bench/durations.py``'s history of 1,000,000 orders with their ten million
events, fees and split groups, twelve providers at their own pace (the
slow ones' orders near their deadlines), the sweep's cases of the history's
hour, all at the history's hour (``bench_history.now``, the clock held
there).

Two measurements, each sweep ``risks.sweep.run_sweep(now)`` in-process,
timed alone, the statements of one more counted (``CaptureQueriesContext``):

- **steady** (``--steady-runs``): the history as it is, after the first
  sweep: every hit has its live case, so each sweep opens, resolves and
  escalates nothing new; what beat's sweep costs every five minutes on it.
- **nothing due** (``--runs``): the same history with nothing for the sweep
  to do: every live case and escalation closed, and each open order a rule
  hits made fresh (in its state for an hour, its parcel delivered an hour
  ago, its deadline ten days away, not blocked); an order or split group
  still hit after that (a provider so slow that even a fresh order is
  forecast to miss) is made finished. One sweep, untimed, settles what is
  left (the split groups it closes), the changed tables are vacuumed (the
  reference server runs without autovacuum), and the runs follow. Each must
  open, resolve and escalate nothing.

The floor, measured right after in the same process: one indexed query
through Django that finds nothing (open orders whose deadline passed a year
before the history's hour: ``order_open_deadline``), timed as many times.
Everything changed is put back afterwards (``surfaces.held``).
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from surfaces import Series, held, load_average, queries_of, start  # noqa: E402

TARGET_MS = 20
FRESH = """
UPDATE orders_order SET
  state_changed_at = %(now)s - interval '1 hour',
  inbound_delivered_at = CASE WHEN inbound_delivered_at IS NULL THEN NULL ELSE %(now)s - interval '1 hour' END,
  auto_confirm_at = greatest(auto_confirm_at, %(now)s + interval '10 days'),
  flow_blocked = false, blocked_stage = '', blocked_reason = ''
WHERE id = ANY(%(ids)s)
"""
FINISHED = "UPDATE orders_order SET state = 'completed', confirmed_at = %(now)s WHERE id = ANY(%(ids)s)"


def hit_orders(now):
    """Every rule's hits at ``now``: the orders hit, and the orders of the split groups hit; hits per rule."""
    from django.db.models import Q

    from orders.models import Order
    from risks import rules
    from risks.models import RiskSettings

    ctx = rules.Context.build(now, RiskSettings.current())
    orders, groups, counts = set(), set(), {}
    for code, spec in rules.RULES.items():
        hits = spec.evaluate(ctx)
        counts[code] = len(hits)
        for hit in hits:
            if spec.group:
                groups.add((hit.trade_no, hit.sku))
            elif hit.order_id:
                orders.add(hit.order_id)
    if groups:
        grouped = Q()
        for trade_no, sku in groups:
            grouped |= Q(trade_no=trade_no, sku=sku)
        orders |= set(Order.objects.filter(grouped).values_list("pk", flat=True))
    return orders, counts


def quiet_down(now):
    """Close every live case and escalation, make the hit orders fresh, then
    finish what is still hit; returns (orders made fresh, made finished, hits per rule)."""
    from django.db import connection

    from risks.choices import LIVE_ESCALATIONS, LIVE_STATUSES, CaseStatus, EscalationStatus, Resolution
    from risks.models import Escalation, RiskCase

    RiskCase.objects.filter(status__in=list(LIVE_STATUSES)).update(
        status=CaseStatus.RESOLVED, resolution=Resolution.CONDITION_CLEARED, resolved_at=now
    )
    live = Escalation.objects.filter(status__in=list(LIVE_ESCALATIONS))
    live.update(status=EscalationStatus.RESOLVED, resolved_at=now)
    hit, counts = hit_orders(now)
    with connection.cursor() as cursor:
        cursor.execute(FRESH, {"now": now, "ids": sorted(hit)})
    finished = set()
    for _ in range(3):
        still, _counts = hit_orders(now)
        if not still:
            break
        with connection.cursor() as cursor:
            cursor.execute(FINISHED, {"now": now, "ids": sorted(still)})
        finished |= still
    else:
        raise SystemExit("some orders are still hit after finishing them")
    return len(hit), len(finished), counts


def vacuum():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM orders_order, orders_splitgroup, risks_riskcase, risks_escalation")


def sweeps(label, now, runs, verbose):
    """One sweep at ``now`` with its statements counted, then ``runs`` more,
    each timed alone; (series, what the last one did)."""
    from risks.sweep import run_sweep

    series = Series(label)
    series.queries, summary = queries_of(lambda: run_sweep(now), verbose, label)
    for _ in range(runs):
        started = time.perf_counter()
        summary = run_sweep(now)
        series.timings.append((time.perf_counter() - started) * 1000)
    series.load = load_average()
    return series, summary.line()


def probe_floor(now, runs):
    """One indexed query that finds nothing, timed ``runs`` times."""
    from orders.models import Order

    query = Order.objects.open().filter(auto_confirm_at__lte=now - datetime.timedelta(days=365))
    series = Series("floor: one indexed query")
    for _ in range(runs):
        started = time.perf_counter()
        found = query.exists()
        series.timings.append((time.perf_counter() - started) * 1000)
    if found:
        raise SystemExit("the floor's query found a row")
    series.queries = 1
    series.load = load_average()
    return series


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="sweeps with nothing due")
    parser.add_argument("--steady-runs", type=int, default=3, help="sweeps of the history as it is")
    parser.add_argument("--verbose", action="store_true", help="print the statements of the first sweep of each")
    args = parser.parse_args()

    now = start()
    from orders.models import Order

    rows = []
    if args.steady_runs:
        sweeps("steady", now, 1, False)  # warm
        steady, line = sweeps("steady: the history as it is", now, args.steady_runs, args.verbose)
        rows.append((steady, probe_floor(now, args.steady_runs), line))
    with held():
        started = time.perf_counter()
        fresh, finished, counts = quiet_down(now)
        sweeps("settle", now, 1, False)
        vacuum()
        prepared = time.perf_counter() - started
        open_orders = Order.objects.open().count()
        sweeps("warm", now, 2, False)
        quiet, line = sweeps("nothing due", now, args.runs, args.verbose)
        rows.append((quiet, probe_floor(now, args.runs), line))
        if line != "opened 0, resolved 0, escalated 0":
            raise SystemExit(f"the sweep with nothing due did something: {line}")

    header = (
        f"{'sweep at the history hour':<30} {'runs':>4} {'min ms':>8} {'p50 ms':>8} {'max ms':>8} {'queries':>8}"
        f"   {'floor p50 ms':>12}   {'p50/floor':>9}   {'target':<10} {'what it did':<36} load average"
    )
    print(f"\n{header}")
    print("-" * len(header))
    for series, floor, what in rows:
        target = f"≤ {TARGET_MS} ms" if series.label == "nothing due" else ""
        print(
            f"{series.label:<30} {len(series.timings):>4} {min(series.timings):>8.1f} {series.p50:>8.1f}"
            f" {series.max:>8.1f} {series.queries:>8}   {floor.p50:>12.2f}   {series.p50 / floor.p50:>9.0f}"
            f"   {target:<10} {what:<36} {series.load}"
        )
    hits = ", ".join(f"{code} {n:,}" for code, n in counts.items() if n)
    print(f"\nhits at the history's hour, before: {hits or 'none'}")
    print(
        f"nothing due: {fresh:,} orders made fresh, {finished:,} of them (or of their groups) finished; "
        f"{open_orders:,} orders open; prepared in {prepared:.0f} s."
    )
    print("floor: Order.objects.filter(open, deadline a year before the history's hour).exists(), in-process.")


if __name__ == "__main__":
    main()
