"""Benchmark of the stage-durations refresh on PostgreSQL (SPEC §8: 1,000,000
orders with 10,000,000 order events, ≤ 30 s and ≤ 300 MB).

    python bench/durations.py [--orders 1000000] [--days 365] [--runs 3] [--rebuild] [--explain]

The history is built once in a database of its own (BENCH_DATABASE_URL,
default postgres://postgres@127.0.0.1:5432/portal_bench_durations) and reused
while its size and recipe match (``--rebuild`` builds it again). It is what
the workflow would have written over ``--days`` days up to the build's hour
(kept with the history, so every later run measures the same moment):

- 12 providers, each at its own pace (``PROVIDERS``: the time it takes over
  each of its stages, from 0.7 to 9 times the usual), 40 merchants, five
  carriers to the buyer, each with its own journey time (``CARRIERS``); every
  wait is drawn log-normal around its median;
- each order's events in ``seq`` order, with the action, ``from_state``,
  ``to_state`` and payload (``{"changes": …, "params": …}``) the workflow
  writes for that step (``orders.workflow``: ``TRANSITIONS``, ``_EFFECTS``,
  ``_save``; the deadline as ``orders.expiry`` applies it): the creation
  carries the whole order (``orders.events.snapshot``), each later step the
  fields it changed; the carrier's scans name the carrier and the number;
- paths: the online flow to the buyer's confirmation, or the deadline
  completing a delivered order; refunds (most before shipment), failed
  appraisals returned to the merchant, "no appraisal needed", flows blocked
  and unblocked, merchants shipping a week late, parcels signed for before
  the carrier's arrival scan, deadlines extended for orders about to miss
  them, and orders auto-refunded at their deadline (the slow providers'
  mostly); split groups of two (one order in fifty), the merchant choosing A
  or B or not at all, some ending with a second logistics fee; the fees each
  step charged; the orders paid in the last days still open;
- each ``orders_order`` row is the fold of its events (as
  ``orders.events.replay`` folds them), checked for every order in SQL after
  the build, and every (action, from, to) written is checked against the
  workflow's transition table.

The rows go in with ``COPY`` (the generator streams them; the table's
secondary indexes are dropped first and built again after, in the same
transaction), then ``VACUUM ANALYZE`` and the checks. A million orders take
four minutes on the two-core reference machine when it is otherwise idle,
a quarter of an hour when others' tests share it.

Each run is a process of its own (as beat's worker runs the task): it calls
``orders.durations.refresh(now)`` at the history's hour and reports the wall
time, the process's peak resident memory (``ru_maxrss`` right after the
refresh; what Django itself holds before it is shown too) and the rows
written. The script that starts the runs never loads Django, so no child's
peak carries its parent's memory. Beside each run, in the same process right
after, two floors, the bare database doing the parts of the same work that
cannot be avoided:

- **scan**: one ``SELECT count(*)`` of the events that left a stage forward
  within the window, by the refresh's own condition: reading the window's
  events out of the whole log, which has no index by time, so PostgreSQL
  reads every event;
- **aggregate**: the same samples materialised beforehand into a temporary
  table (untimed), then one plain ``SELECT percentile_cont(0.5),
  percentile_cont(0.9) WITHIN GROUP (ORDER BY …) … GROUP BY GROUPING SETS``
  over it: the figures' arithmetic alone.

What the refresh costs beyond the two is looking up, for each sample, when
its order entered the stage, and writing the rows. ``--explain`` prints the
plan of the samples query with its timings (``EXPLAIN ANALYZE``).
"""

import argparse
import datetime
import functools
import itertools
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sweep import prepare_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_durations"
# Bumped whenever the recipe below changes: a history built by another recipe is rebuilt.
RECIPE = 2
UTC = datetime.UTC
NULL = "\\N"  # COPY's null
HOUR = 3600
DAY = 24 * HOUR

# --- the recipe -------------------------------------------------------------------

# The states and actions, as ``orders.choices`` names them (checked against it at build time).
AWAITING, INBOUND, ARRIVED, SIGNED_IN = "awaiting_shipment", "inbound", "arrived", "signed_in"
APPRAISED, INSPECTED, PACKED, PRINTED = "appraised", "inspected", "packed", "waybill_printed"
OUTBOUND, DELIVERED, COMPLETED, RETURNED = "outbound", "delivered", "completed", "returned"
REFUNDED, AUTO_REFUNDED = "refunded", "auto_refunded"
TERMINAL = frozenset({COMPLETED, RETURNED, REFUNDED, AUTO_REFUNDED})
SPLIT_CHOICE = "split_choice"


@dataclass(frozen=True)
class Provider:
    code: str
    name: str
    appraisal_fee: str
    logistics_fee: str
    # How long it takes over its own stages, against the usual (``PROVIDER_WAITS``).
    pace: float
    # Its share of the orders, in hundredths.
    share: int


PROVIDERS = (
    Provider("P-BENCH-01", "华东鉴定中心", "30.00", "12.00", 0.7, 16),
    Provider("P-BENCH-02", "华南鉴定中心", "45.00", "15.00", 0.9, 14),
    Provider("P-BENCH-03", "华北鉴定中心", "35.00", "12.00", 1.0, 12),
    Provider("P-BENCH-04", "西南鉴定中心", "32.00", "14.00", 1.0, 10),
    Provider("P-BENCH-05", "华中鉴定中心", "28.00", "12.00", 1.2, 10),
    Provider("P-BENCH-06", "东北鉴定中心", "30.00", "13.00", 1.3, 8),
    Provider("P-BENCH-07", "西北鉴定中心", "38.00", "15.00", 1.5, 8),
    Provider("P-BENCH-08", "腕表专业鉴定", "60.00", "20.00", 1.8, 6),
    Provider("P-BENCH-09", "潮鞋鉴定工作室", "25.00", "10.00", 2.5, 6),
    Provider("P-BENCH-10", "奢品检测中心", "50.00", "18.00", 3.0, 4),
    # The slow ones: days over each stage; many of their orders are forecast
    # to miss the deadline, and some do.
    Provider("P-BENCH-11", "玉石鉴定所", "40.00", "15.00", 7.0, 3),
    Provider("P-BENCH-12", "收藏品评级社", "35.00", "12.00", 9.0, 3),
)
MERCHANTS = 40
# The provider's own waits at the usual pace: median hours and the spread
# (sigma) of a log-normal draw, by the state the order waits in.
PROVIDER_WAITS = {
    ARRIVED: (2.0, 0.6),  # a parcel at the provider, not yet signed for
    SIGNED_IN: (2.5, 0.6),
    APPRAISED: (1.5, 0.6),
    INSPECTED: (1.0, 0.6),
    PACKED: (0.8, 0.6),
    PRINTED: (4.0, 0.6),  # the waybill printed, the parcel not yet picked up
}
# The merchant shipping; a week late for some.
SHIP_WAIT, LATE_SHIP_WAIT = (10.0, 0.6), (150.0, 0.3)
# Carriers to the provider: name, tracking number prefix, median hours and spread, share.
INBOUND_CARRIERS = (("SF", "SF1", 26.0, 0.35, 70), ("JD", "JDV", 28.0, 0.35, 15), ("ZTO", "75", 40.0, 0.4, 15))
# Carriers to the buyer: name, median hours and spread, share.
CARRIERS = (
    ("SF", 30.0, 0.35, 45),
    ("JD", 26.0, 0.35, 20),
    ("ZTO", 44.0, 0.4, 15),
    ("YTO", 48.0, 0.4, 12),
    ("EMS", 72.0, 0.5, 8),
)
# The buyer confirming after delivery; some never do, and the deadline completes the order.
CONFIRM_WAIT, NEVER_CONFIRMS = (60.0, 0.7), 0.25
# The confirmation deadline the platform sets at payment, and an extension
# for an order about to miss it (some of them, shortly before).
DEADLINE = 10 * DAY
EXTEND_SHARE, EXTEND_HOURS = 0.35, 72
# How single orders go, per order: refunded (most before shipment), failed at
# appraisal (returned), no appraisal needed; blocked for a while; shipped a
# week late; carrier's pickup scan before the merchant's shipment; signed for
# before the carrier's arrival scan (the scan then changes nothing).
REFUND, REFUND_BEFORE_SHIPMENT = 0.06, 0.6
FAIL, NOT_REQUIRED = 0.03, 0.03
BLOCKED, BLOCK_WAIT = 0.02, (20.0, 0.5)
LATE_SHIPMENT, CARRIER_FIRST, SIGNED_BEFORE_SCAN = 0.03, 0.10, 0.40
# One purchase in a hundred is a split group of two orders (same trade and SKU).
# What became of it, with how many of every hundred: the merchant chose A and
# the extra order was refunded; chose B and both were delivered; did not answer
# and both were picked up (a second logistics fee: a loss); did not answer and
# the platform refunded the extra order.
SPLIT = 0.01
SPLIT_ENDINGS = (("choose_a", 40), ("choose_b", 25), ("two_pickups", 20), ("refund_extra", 15))
ITEMS = (
    ("SKU-SNKR-AJ1", "Air Jordan 1 高帮 芝加哥配色 42码", 1899),
    ("SKU-SNKR-DUNK", "Nike Dunk Low 熊猫 40码", 899),
    ("SKU-WATCH-SUB", "劳力士 潜航者型 116610LN", 68500),
    ("SKU-WATCH-SPD", "欧米茄 超霸系列 月球表", 42800),
    ("SKU-BAG-LV", "路易威登 Speedy 25 手袋", 13200),
    ("SKU-BAG-CH", "香奈儿 CF 中号 黑金", 52000),
    ("SKU-TOY-BB", "Bearbrick 1000% 限定款", 3680),
    ("SKU-JADE-01", "和田玉 籽料手镯", 8800),
    ("SKU-CARD-PKM", "宝可梦 PSA10 评级卡", 2450),
    ("SKU-PHONE-15", "iPhone 15 Pro 256G 原色钛", 7999),
    ("SKU-LENS-GM", "索尼 FE 24-70mm F2.8 GM II", 13999),
    ("SKU-WINE-MT", "贵州茅台 飞天 53度 500ml", 2699),
)
CITIES = ("上海市浦东新区", "北京市朝阳区", "广州市天河区", "深圳市南山区", "杭州市西湖区", "成都市武侯区")
BLOCK_REASONS = {
    SIGNED_IN: ("entry", "系统无法录入鉴定结果"),
    APPRAISED: ("inspection", "质检页面报错，无法提交"),
    INSPECTED: ("packing", "打包环节无法生成包裹号"),
}
REFUND_REASONS = ("买家取消订单", "商家缺货", "买家申请退款")
SPLIT_REFUND_REASON = "拆单：退款后按普通订单重新购买"


def _pick(rng, weighted):
    """One of ``weighted`` (tuples whose last member is the weight)."""
    return rng.choices(weighted, cum_weights=_cumulative(weighted))[0]


_CUMULATIVE = {}


def _cumulative(weighted):
    found = _CUMULATIVE.get(id(weighted))
    if found is None:
        found = _CUMULATIVE[id(weighted)] = list(itertools.accumulate(w[-1] for w in weighted))
    return found


def _wait(rng, median, sigma, scale=1.0) -> int:
    """A log-normal wait in whole seconds, at least a minute."""
    return 60 + int(rng.lognormvariate(math.log(median * scale), sigma) * HOUR)


@functools.lru_cache(maxsize=1024)
def _iso(t: int) -> str:
    """A moment as ``orders.events.to_json`` writes it (UTC, whole seconds)."""
    return datetime.datetime.fromtimestamp(t, UTC).isoformat()


# The payload as JSON text, as compact as the database keeps it anyway.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class History:
    """The generator: ``orders`` orders paid over ``days`` days up to ``now``
    (epoch seconds), written as ``COPY`` text. ``orgs`` maps the codes of the
    platform, merchants and providers to their ids."""

    def __init__(self, orders, days, now, orgs, seed=20261130):
        self.total = orders
        self.days = days
        self.now = now
        self.begin = now - days * DAY
        self.rng = random.Random(seed)
        self.platform = orgs["PLATFORM"]
        self.merchants = [orgs[f"M-BENCH-{n:03d}"] for n in range(1, MERCHANTS + 1)]
        self.providers = tuple((p, orgs[p.code], p.share) for p in PROVIDERS)
        self.event_id = 0
        self.events = 0
        self.groups = {}  # (trade_no, sku) -> [choice, chosen_at, [order ids]]
        self.closing = {}  # a split group's order id -> when it finished
        self.fee_file = None  # where the COPY lines of orders_feecharge go
        self.outcomes = {}

    # -- one purchase: one order, or a split group of two --------------------------

    def purchases(self):
        """Yield, per order, its ``COPY`` line of ``orders_order`` and the lines of its events."""
        rng = self.rng
        order_id = 0
        purchase = 0
        while order_id < self.total:
            purchase += 1
            order_id += 1
            # Paid in id order, spread evenly over the days, to the second.
            paid = self.begin + int((order_id - rng.random()) * self.days * DAY / self.total)
            provider, provider_id, _share = _pick(rng, self.providers)
            merchant_id = rng.choice(self.merchants)
            sku, title, price = rng.choice(ITEMS)
            base = {
                "trade_no": f"{10**16 + purchase * 7919 % 10**16:017d}",
                "merchant_id": merchant_id,
                "provider_id": provider_id,
                "sku": sku,
                "item_title": title,
                "quantity": 1,
                "amount": f"{price * (90 + rng.randrange(21)) // 100}.00",
                "paid_at": paid,
            }
            if order_id < self.total and rng.random() < SPLIT:
                ending = _pick(rng, SPLIT_ENDINGS)[0]
                yield self._split(order_id, base, provider, ending)
                order_id += 1
                yield self._split(order_id, base, provider, ending, extra=True)
            else:
                yield self._single(order_id, base, provider)

    def _single(self, order_id, base, provider):
        rng = self.rng
        roll = rng.random()
        result = "pass"
        refund = None
        if roll < REFUND:
            refund = "early" if rng.random() < REFUND_BEFORE_SHIPMENT else "later"
        elif roll < REFUND + FAIL:
            result = "fail"
        elif roll < REFUND + FAIL + NOT_REQUIRED:
            result = "not_required"
        return self._order(order_id, base, provider, result, refund=refund, blocked=rng.random() < BLOCKED)

    def _split(self, order_id, base, provider, ending, extra=False):
        rng = self.rng
        key = (base["trade_no"], base["sku"])
        group = self.groups.setdefault(key, ["", None, []])
        group[2].append(order_id)
        choice_at = None
        if ending in ("choose_a", "choose_b"):
            if not extra:
                group[0] = "A" if ending == "choose_a" else "B"
                group[1] = base["paid_at"] + rng.randrange(12 * HOUR, 48 * HOUR)
            choice_at = group[1]
        # Only one order of a group may carry pass or fail (the workflow refuses
        # a second): the extra one is kept as "no appraisal needed", or held
        # after its sign-in until it is refunded.
        result, refund = "pass", None
        if extra:
            if ending in ("choose_b", "two_pickups"):
                result = "not_required"
            elif ending == "choose_a":
                refund = choice_at + rng.randrange(HOUR, 12 * HOUR)
            else:
                refund = base["paid_at"] + rng.randrange(24 * HOUR, 96 * HOUR)
        return self._order(
            order_id, base, provider, result, refund=refund, choice=(group[0], choice_at), hold=refund is not None
        )

    # -- one order's story ---------------------------------------------------------

    def _order(self, order_id, base, provider, result, *, refund=None, blocked=False, choice=("", None), hold=False):
        """One order's plan; ``hold``: the provider signs it in and goes no
        further (the extra order of a split group, waiting to be refunded)."""
        rng = self.rng
        paid = base["paid_at"]
        pace = provider.pace
        inbound, prefix, inbound_hours, inbound_sigma, _share = _pick(rng, INBOUND_CARRIERS)
        tracking = f"{prefix}{rng.randrange(10**12):012d}"
        carrier, out_hours, out_sigma, _share = _pick(rng, CARRIERS)
        waybill = f"AXJ{order_id:010d}{rng.randrange(10**6):06d}"
        merchant, provider_org, platform = base["merchant_id"], base["provider_id"], self.platform
        inbound_params = {"carrier": inbound, "tracking_no": tracking}
        outbound_params = {"carrier": carrier, "tracking_no": waybill}

        # The flow as it would go, step by step: (time, action, target or
        # None for a step that moves nothing, changes, params, source, actor).
        plan = []
        t = paid + _wait(rng, *(LATE_SHIP_WAIT if rng.random() < LATE_SHIPMENT else SHIP_WAIT))
        shipped = {"inbound_carrier": inbound, "inbound_tracking_no": tracking}
        if rng.random() < CARRIER_FIRST:
            plan.append((t, "carrier_pickup", INBOUND, shipped, inbound_params, "carrier", None))
        else:
            plan.append((t, "ship", INBOUND, shipped, inbound_params, "web", merchant))
        t += _wait(rng, inbound_hours, inbound_sigma)
        if rng.random() < SIGNED_BEFORE_SCAN:
            t += rng.randrange(5 * 60, HOUR)
        else:
            plan.append((t, "carrier_delivery", ARRIVED, {"inbound_delivered_at": t}, inbound_params, "carrier", None))
            t += _wait(rng, *PROVIDER_WAITS[ARRIVED], pace)
        plan.append((t, "sign_in", SIGNED_IN, {}, None, "web", provider_org))
        delivered_at = None
        if not hold:
            stages = [SIGNED_IN, APPRAISED] if result == "not_required" else [SIGNED_IN, APPRAISED, INSPECTED, PACKED]
            blocked_in = rng.choice(stages[:3]) if blocked else None
            for stage in stages:
                took = _wait(rng, *PROVIDER_WAITS[stage], pace)
                if stage == blocked_in:
                    reported = t + int(took * rng.uniform(0.2, 0.8))
                    stage_code, reason = BLOCK_REASONS[stage]
                    plan.append(
                        (
                            reported,
                            "report_blocked",
                            None,
                            {"flow_blocked": True, "blocked_stage": stage_code, "blocked_reason": reason},
                            {"stage": stage_code, "reason": reason},
                            "web",
                            provider_org,
                        )
                    )
                    held = _wait(rng, *BLOCK_WAIT)
                    plan.append(
                        (
                            reported + held,
                            "unblock",
                            None,
                            {"flow_blocked": False, "blocked_stage": "", "blocked_reason": ""},
                            None,
                            "web",
                            platform,
                        )
                    )
                    took += held
                t += took
                if stage == SIGNED_IN:
                    plan.append(
                        (
                            t,
                            "appraise",
                            APPRAISED,
                            {"appraisal_result": result},
                            {"result": result},
                            "web",
                            provider_org,
                        )
                    )
                elif stage == APPRAISED and result != "not_required":
                    plan.append((t, "inspect", INSPECTED, {}, None, "web", provider_org))
                elif stage == INSPECTED:
                    plan.append((t, "pack", PACKED, {}, None, "web", provider_org))
                else:
                    printed = {"waybill_no": waybill, "waybill_printed_at": t}
                    plan.append((t, "print_waybill", PRINTED, printed, None, "web", provider_org))
            t += _wait(rng, *PROVIDER_WAITS[PRINTED], pace)
            plan.append((t, "carrier_pickup", OUTBOUND, {"picked_up_at": t}, outbound_params, "carrier", None))
            t += _wait(rng, out_hours, out_sigma)
            arrived = RETURNED if result == "fail" else DELIVERED
            plan.append((t, "carrier_delivery", arrived, {"delivered_at": t}, outbound_params, "carrier", None))
            delivered_at = t

        deadline = paid + DEADLINE
        if refund is not None:
            if refund == "early":
                refund = paid + int((plan[0][0] - paid) * rng.uniform(0.1, 0.9))
            elif refund == "later":
                # Somewhere between the shipment and the pickup.
                moving = [step[0] for step in plan if step[2] is not None]
                k = rng.randrange(1, len(moving) - 2)
                refund = moving[k - 1] + int((moving[k] - moving[k - 1]) * rng.uniform(0.1, 0.9))
            reason = SPLIT_REFUND_REASON if choice[1] is not None else rng.choice(REFUND_REASONS)
            plan.append((refund, "refund", REFUNDED, {}, {"reason": reason}, "platform", platform))
        elif delivered_at is not None and delivered_at > deadline and rng.random() < EXTEND_SHARE:
            # The platform gives an order about to miss its deadline three more days.
            at = deadline - rng.randrange(6 * HOUR, 36 * HOUR)
            new = deadline + EXTEND_HOURS * HOUR
            plan.append(
                (at, "extend_deadline", None, {"auto_confirm_at": new}, {"hours": EXTEND_HOURS}, "web", platform)
            )
        if choice[1] is not None:
            plan.append((choice[1], SPLIT_CHOICE, None, {}, {"choice": choice[0]}, "web", merchant))
        plan.sort(key=lambda step: step[0])
        confirm_wait = None if rng.random() < NEVER_CONFIRMS else _wait(rng, *CONFIRM_WAIT)
        return self._write(order_id, base, plan, deadline, confirm_wait, provider)

    def _write(self, order_id, base, plan, deadline, confirm_wait, provider):
        """Fold the plan into events as the workflow would have written them by
        ``now`` (the deadline applied as ``orders.expiry`` applies it), and the
        order row as they rebuild it."""
        now = self.now
        paid = base["paid_at"]
        row = {
            "order_no": f"{3 * 10**18 + order_id * 104729}",
            **base,
            "buyer_name": f"买家{order_id % 9973}",
            "buyer_phone": f"13{order_id % 10**9:09d}",
            "buyer_address": f"{CITIES[order_id % len(CITIES)]}{order_id % 997}号",
            "paid_at": _iso(paid),
            "auto_confirm_at": _iso(deadline),
            "state": AWAITING,
            "appraisal_result": "",
            "flow_blocked": False,
            "blocked_stage": "",
            "blocked_reason": "",
            "inbound_carrier": "",
            "inbound_tracking_no": "",
            "inbound_delivered_at": None,
            "waybill_no": "",
            "waybill_printed_at": None,
            "picked_up_at": None,
            "delivered_at": None,
            "confirmed_at": None,
            "state_changed_at": _iso(paid),
        }
        lines = []
        state = AWAITING
        seq = 0
        last = paid

        def event(t, action, source, actor, target, changes, params, recorded_delay=0):
            nonlocal seq, state, last
            seq += 1
            self.event_id += 1
            payload = {"changes": changes}
            if params:
                payload["params"] = params
            text = _encode(payload)
            at = _iso(t)
            lines.append(
                f"{self.event_id}\t{order_id}\t{seq}\t{action}\t{source}\t\\N\t"
                f"{NULL if actor is None else actor}\t{state if action != 'create' else ''}\t{target}\t"
                f"{text}\t{at}\t{at if not recorded_delay else _iso(t + recorded_delay)}\n"
            )
            row.update(changes)
            row["state"] = target
            state = target
            last = t

        event(paid, "create", "api", base["merchant_id"], AWAITING, dict(row), None, recorded_delay=60)
        created_at = _iso(paid + 60)
        fee_result = None
        stopped = False
        for t, action, target, changes, params, source, actor in plan:
            if state not in TERMINAL and t > deadline:
                break
            if t > now:
                stopped = True
                break
            if state in TERMINAL and action != SPLIT_CHOICE:
                continue
            changes = {k: (_iso(v) if k.endswith("_at") else v) for k, v in changes.items()}
            if target is None:
                target = state
            else:
                changes["state"] = target
                changes["state_changed_at"] = _iso(t)
            if action == "extend_deadline":
                deadline = deadline + EXTEND_HOURS * HOUR
            event(t, action, source, actor, target, changes, params, recorded_delay=30 if source == "carrier" else 0)
            if action == "carrier_pickup" and target == OUTBOUND:
                self.fee_file.write(
                    f"{order_id}\tlogistics\t{provider.logistics_fee}\t{row['waybill_no']}\t{_iso(t)}\n"
                )
            if target in (COMPLETED, RETURNED) and action != SPLIT_CHOICE:
                fee_result = t
        if not stopped:
            if state == DELIVERED:
                # The buyer confirms, or the deadline completes the order.
                confirm = None if confirm_wait is None else max(last + confirm_wait, last + 60)
                if confirm is not None and confirm < deadline and confirm <= now:
                    at = _iso(confirm)
                    changes = {"confirmed_at": at, "state": COMPLETED, "state_changed_at": at}
                    event(confirm, "confirm", "platform", self.platform, COMPLETED, changes, None)
                    fee_result = confirm
                elif (confirm is None or confirm >= deadline) and deadline <= now:
                    at = _iso(deadline)
                    event(
                        deadline, "expire", "sweep", None, COMPLETED, {"state_changed_at": at, "confirmed_at": at}, None
                    )
                    fee_result = deadline
            elif state not in TERMINAL and deadline <= now:
                event(deadline, "expire", "sweep", None, AUTO_REFUNDED, {"state_changed_at": _iso(deadline)}, None)
        if fee_result is not None and row["appraisal_result"] in ("pass", "fail"):
            self.fee_file.write(f"{order_id}\tappraisal\t{provider.appraisal_fee}\t\t{_iso(fee_result)}\n")
        self.events += seq
        if state in TERMINAL and (base["trade_no"], base["sku"]) in self.groups:
            self.closing[order_id] = last
        self.outcomes[state] = self.outcomes.get(state, 0) + 1
        values = [order_id, *(row[name] for name in ORDER_COLUMNS[1:-2]), seq, created_at]
        text = "\t".join(NULL if v is None else ("t" if v is True else "f" if v is False else str(v)) for v in values)
        return text + "\n", lines

    def split_groups(self):
        """``orders_splitgroup`` rows: each group with the merchant's choice, and
        closed (as the sweep closes it) a few minutes after its last order
        finished."""
        for (trade_no, sku), (choice, chosen_at, members) in self.groups.items():
            if len(members) < 2:
                continue
            finished = [self.closing.get(pk) for pk in members]
            closed = None
            if all(finished) and max(finished) + 300 <= self.now:
                closed = max(finished) + 300
            yield (trade_no, sku, choice, chosen_at if choice else None, closed)


ORDER_COLUMNS = (
    "id",
    "order_no",
    "trade_no",
    "merchant_id",
    "provider_id",
    "sku",
    "item_title",
    "quantity",
    "amount",
    "buyer_name",
    "buyer_phone",
    "buyer_address",
    "paid_at",
    "auto_confirm_at",
    "state",
    "appraisal_result",
    "flow_blocked",
    "blocked_stage",
    "blocked_reason",
    "inbound_carrier",
    "inbound_tracking_no",
    "inbound_delivered_at",
    "waybill_no",
    "waybill_printed_at",
    "picked_up_at",
    "delivered_at",
    "confirmed_at",
    "state_changed_at",
    "version",
    "created_at",
)
EVENT_COLUMNS = (
    "id",
    "order_id",
    "seq",
    "action",
    "source",
    "actor_user_id",
    "actor_organisation_id",
    "from_state",
    "to_state",
    "payload",
    "occurred_at",
    "recorded_at",
)
LOADED = ("orders_order", "orders_orderevent", "orders_feecharge", "orders_splitgroup")

# --- the database -----------------------------------------------------------------


def open_database(default_url):
    """Create the benchmark database on first use, point Django at it, set it up
    and migrate it; returns its URL."""
    url = os.environ.get("BENCH_DATABASE_URL", default_url)
    prepare_database(url)
    _setup(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def _setup(url):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def stored_history():
    """What the database holds (``bench_history``), or ``None``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_history')")
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute("SELECT recipe, orders, events, days, now FROM bench_history")
        found = cursor.fetchone()
        if found is None:
            return None
        cursor.execute("SELECT count(*) FROM orders_order")
        (orders,) = cursor.fetchone()
    recipe, recorded, events, days, now = found
    if orders != recorded:
        return None
    return {"recipe": recipe, "orders": orders, "events": events, "days": days, "now": now}


def ensure_history(orders, days, rebuild=False):
    """The history of ``orders`` orders over ``days`` days: reused when the
    database holds it (same size, same recipe), built otherwise. Returns
    ``stored_history()``."""
    found = None if rebuild else stored_history()
    if found and (found["recipe"], found["orders"], found["days"]) == (RECIPE, orders, days):
        return found
    now = datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    build(orders, days, now)
    return stored_history()


def organisations():
    """The platform, the merchants and the providers; ``code → id``."""
    from decimal import Decimal

    from portal.choices import OrganisationKind
    from portal.models import Organisation

    wanted = [("PLATFORM", "安心鉴平台运营", OrganisationKind.PLATFORM, "0", "0")]
    wanted += [
        (f"M-BENCH-{n:03d}", f"商户{n:03d}号店", OrganisationKind.MERCHANT, "0", "0") for n in range(1, MERCHANTS + 1)
    ]
    wanted += [(p.code, p.name, OrganisationKind.PROVIDER, p.appraisal_fee, p.logistics_fee) for p in PROVIDERS]
    ids = {}
    for code, name, kind, appraisal_fee, logistics_fee in wanted:
        org, _created = Organisation.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "appraisal_fee": Decimal(appraisal_fee),
                "logistics_fee": Decimal(logistics_fee),
                "is_active": True,
            },
        )
        ids[code] = org.pk
    return ids


def _copy_from(cursor, sql, source, chunk=1 << 20):
    """Stream ``source`` (text lines, or an open text file) into ``COPY … FROM STDIN``."""
    with cursor.cursor.copy(sql) as copy:
        if hasattr(source, "read"):
            while block := source.read(chunk):
                copy.write(block)
            return
        buffer, size = [], 0
        for line in source:
            buffer.append(line)
            size += len(line)
            if size >= chunk:
                copy.write("".join(buffer))
                buffer, size = [], 0
        if buffer:
            copy.write("".join(buffer))


def build(orders, days, now):
    """Replace the orders, their events, fees and split groups with a history
    of ``orders`` orders over ``days`` days up to ``now``, in one transaction."""
    from django.db import connection, transaction

    _check_recipe()
    started = time.perf_counter()
    orgs = organisations()
    history = History(orders, days, int(now.timestamp()), orgs)
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as order_file,
        tempfile.TemporaryFile("w+", encoding="utf-8") as fee_file,
        transaction.atomic(),
    ):
        history.fee_file = fee_file
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            # The rows are consistent by construction and checked below; no
            # foreign-key trigger per row.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(
                "TRUNCATE orders_order, orders_orderevent, orders_feecharge, orders_splitgroup, "
                "orders_stageduration, orders_carrierscan RESTART IDENTITY CASCADE"
            )
            cursor.execute("DROP TABLE IF EXISTS bench_history")
            cursor.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid::regclass::text = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                [list(LOADED)],
            )
            indexes = cursor.fetchall()
            for name, _definition in indexes:
                cursor.execute(f"DROP INDEX {name}")

            def stream():
                for order_line, event_lines in history.purchases():
                    order_file.write(order_line)
                    yield from event_lines

            _copy_from(cursor, f"COPY orders_orderevent ({', '.join(EVENT_COLUMNS)}) FROM STDIN", stream())
            print(f"  events: {history.events:,} in {time.perf_counter() - started:.0f} s", flush=True)
            order_file.seek(0)
            _copy_from(cursor, f"COPY orders_order ({', '.join(ORDER_COLUMNS)}) FROM STDIN", order_file)
            fee_file.seek(0)
            _copy_from(
                cursor, "COPY orders_feecharge (order_id, kind, amount, waybill_no, charged_at) FROM STDIN", fee_file
            )
            groups = list(history.split_groups())
            cursor.executemany(
                "INSERT INTO orders_splitgroup (trade_no, sku, choice, chosen_at, closed_at) "
                "VALUES (%s, %s, %s, to_timestamp(%s), to_timestamp(%s))",
                groups,
            )
            print(f"  orders, fees, {len(groups):,} split groups: {time.perf_counter() - started:.0f} s", flush=True)
            for table in ("orders_order", "orders_orderevent", "orders_feecharge"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            for _name, definition in indexes:
                cursor.execute(definition)
            print(f"  indexes: {time.perf_counter() - started:.0f} s", flush=True)
            cursor.execute(
                "CREATE TABLE bench_history AS SELECT %s::int AS recipe, %s::int AS orders, %s::bigint AS events, "
                "%s::int AS days, %s::timestamptz AS now",
                [RECIPE, orders, history.events, days, now],
            )
    with connection.cursor() as cursor:
        for table in LOADED:
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"  vacuumed: {time.perf_counter() - started:.0f} s", flush=True)
    check_history()
    outcomes = ", ".join(f"{state} {n:,}" for state, n in sorted(history.outcomes.items(), key=lambda kv: -kv[1]))
    print(
        f"built {orders:,} orders, {history.events:,} events over {days} days to {now:%Y-%m-%d %H:%M} UTC "
        f"in {time.perf_counter() - started:.0f} s ({outcomes})",
        flush=True,
    )


def _check_recipe():
    """The recipe's states and actions are the project's."""
    from orders.choices import Action, OrderState

    states = {AWAITING, INBOUND, ARRIVED, SIGNED_IN, APPRAISED, INSPECTED, PACKED, PRINTED, OUTBOUND}
    states |= {DELIVERED, *TERMINAL}
    if not states <= set(OrderState.values) or SPLIT_CHOICE not in Action.values:
        raise SystemExit("the benchmark's states or actions are not the project's any more")


# Every order's events folded in seq order (each event's changes over the
# last, the state from ``to_state``), compared column by column with its row.
_FOLD_CHECK = """
WITH folded AS (
  SELECT order_id, max(seq) AS version, count(*) AS events,
         pg_temp.bench_fold(payload->'changes' || jsonb_build_object('state', to_state) ORDER BY seq) AS fields
  FROM orders_orderevent GROUP BY order_id
)
SELECT count(*) FILTER (WHERE o.id IS NULL OR f.order_id IS NULL
                          OR o.version <> f.version OR f.events <> f.version
                          OR ({columns}) IS DISTINCT FROM ({folded})),
       count(*)
FROM folded f
FULL JOIN orders_order o ON o.id = f.order_id
CROSS JOIN LATERAL jsonb_populate_record(NULL::orders_order, f.fields) AS r
"""


def check_history():
    """Every order equals the fold of its events, every step is one the
    workflow could write, and the foreign keys hold (they were not checked
    row by row while loading)."""
    from django.db import connection

    from orders.events import TRACKED_FIELDS
    from orders.workflow import TRANSITIONS

    started = time.perf_counter()
    sql = _FOLD_CHECK.format(
        columns=", ".join(f"o.{name}" for name in TRACKED_FIELDS),
        folded=", ".join(f"r.{name}" for name in TRACKED_FIELDS),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE AGGREGATE pg_temp.bench_fold(jsonb) (SFUNC = jsonb_concat, STYPE = jsonb, INITCOND = '{}')"
        )
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute(sql)
        wrong, orders = cursor.fetchone()
        cursor.execute("RESET work_mem")
        cursor.execute("DROP AGGREGATE pg_temp.bench_fold(jsonb)")
        cursor.execute("SELECT action, from_state, to_state, count(*) FROM orders_orderevent GROUP BY 1, 2, 3")
        steps = cursor.fetchall()
        cursor.execute(
            "SELECT (SELECT count(*) FROM orders_orderevent e WHERE NOT EXISTS "
            "        (SELECT 1 FROM orders_order o WHERE o.id = e.order_id)) "
            "     + (SELECT count(*) FROM orders_feecharge f WHERE NOT EXISTS "
            "        (SELECT 1 FROM orders_order o WHERE o.id = f.order_id))"
        )
        (orphans,) = cursor.fetchone()
    allowed = {(m.action, m.source, m.target) for m in TRANSITIONS}
    unknown = [
        (action, source, target, n)
        for action, source, target, n in steps
        if not (
            (action, source, target) in allowed
            or (action == "create" and source == "" and target == AWAITING)
            or (action == SPLIT_CHOICE and source == target)
        )
    ]
    if wrong or unknown or orphans:
        raise SystemExit(
            f"the history is not consistent: {wrong:,} of {orders:,} orders differ from the fold of their events, "
            f"{orphans:,} rows without their order, steps the workflow cannot write: {unknown}"
        )
    print(
        f"  checked: {orders:,} orders equal the fold of their events; {len(steps)} kinds of step, "
        f"all in the transition table ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )


# --- the measurement -----------------------------------------------------------------


def run_child(script, arguments):
    """Run ``script`` with ``arguments`` in a process of its own (its output
    goes to ours); returns what it reported (``report``) and its peak RSS in
    MB (``wait4``: that child's own).

    The caller never loads Django itself: Linux counts in a child's peak the
    resident memory its parent had when it forked, so a large parent would
    inflate every child's figure."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        child = subprocess.Popen(
            [sys.executable, str(script), *arguments],
            cwd=ROOT,
            # As served: no query log.
            env={
                **os.environ,
                "LOG_LEVEL": "WARNING",
                "DEBUG": "0",
                "SECRET_KEY": "bench-" + "x" * 50,
                "BENCH_RESULT": result.name,
            },
        )
        _pid, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{Path(script).name} {' '.join(arguments)} failed")
        return json.load(result), usage.ru_maxrss / 1024


def report(found):
    """What a child hands back to ``run_child``."""
    with open(os.environ["BENCH_RESULT"], "w") as out:
        json.dump(found, out, default=str)


def prepare(default_url, orders, days, rebuild):
    """Open (create, migrate) the database and build or reuse the history;
    report what it holds."""
    url = open_database(default_url)
    found = ensure_history(orders, days, rebuild)
    report({**found, "now": found["now"].isoformat(), "url": url})


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _leaving_forward():
    """SQL: an event that takes an order out of a stage forward, as ``orders.durations`` counts it."""
    from orders.choices import FLOW_ORDER, OrderState
    from orders.durations import STAGES, TRANSIT

    pairs = []
    for stage in STAGES:
        later = FLOW_ORDER[FLOW_ORDER.index(stage) + 1 :]
        if stage == TRANSIT:
            later = [*later, OrderState.RETURNED]
        pairs += [f"('{stage}', '{target}')" for target in later]
    return f"(from_state, to_state) IN ({', '.join(pairs)})"


def scan_floor(now, window):
    """Count the window's stage-leaving events: the read the refresh cannot avoid."""
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            f"SELECT count(*) FROM orders_orderevent WHERE occurred_at > %s AND occurred_at <= %s "
            f"AND {_leaving_forward()}",
            [now - window, now],
        )
        (found,) = cursor.fetchone()
        return time.perf_counter() - started, found


def aggregate_floor(now, window):
    """The samples materialised first (untimed), then the percentiles alone."""
    from django.db import connection

    from orders.durations import MEDIAN, P90, TRANSIT, samples

    sql, params = samples(now, window).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE bench_sample AS {sql}", params)
        cursor.execute("ANALYZE bench_sample")
        started = time.perf_counter()
        cursor.execute(
            f"""
            SELECT provider, carrier, stage,
                   percentile_cont({MEDIAN}) WITHIN GROUP (ORDER BY left_at - entered_at),
                   percentile_cont({P90}) WITHIN GROUP (ORDER BY left_at - entered_at),
                   count(*)
            FROM bench_sample WHERE entered_at IS NOT NULL
            GROUP BY GROUPING SETS ((provider, stage), (stage), (carrier, stage))
            HAVING GROUPING(carrier) = 1 OR (stage = %s AND carrier <> '')
            """,
            [TRANSIT],
        )
        groups = len(cursor.fetchall())
        took = time.perf_counter() - started
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE entered_at IS NULL) FROM bench_sample")
        rows, missing = cursor.fetchone()
        cursor.execute("DROP TABLE bench_sample")
    return took, groups, rows, missing


def child(now_text):
    """One measured run (in a process of its own): the refresh, then the floors."""
    _setup(os.environ["BENCH_DATABASE_URL"])
    from orders import durations

    now = datetime.datetime.fromisoformat(now_text)
    before = peak_mb()
    started = time.perf_counter()
    rows = durations.refresh(now)
    wall = time.perf_counter() - started
    after = peak_mb()
    scan, leaving = scan_floor(now, durations.WINDOW)
    aggregate, groups, samples, missing = aggregate_floor(now, durations.WINDOW)
    report(
        {
            "wall": wall,
            "rows": rows,
            "rss_before": before,
            "rss_after": after,
            "scan": scan,
            "leaving": leaving,
            "aggregate": aggregate,
            "groups": groups,
            "samples": samples,
            "missing": missing,
        }
    )


def explain(now):
    """The samples query's plan with its timings (in a process of its own)."""
    _setup(os.environ["BENCH_DATABASE_URL"])
    from django.db import connection

    from orders.durations import WINDOW, samples

    sql, params = samples(now, WINDOW).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        print("\nEXPLAIN ANALYZE of the samples query (orders.durations.samples):")
        for (line,) in cursor.fetchall():
            print(f"  {line}")
    report({})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="the days the orders were paid over")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="build the history again even if it matches")
    parser.add_argument("--explain", action="store_true", help="print the samples query's plan and timings")
    parser.add_argument("--child", metavar="NOW", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--explain-at", metavar="NOW", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(DEFAULT_URL, args.orders, args.days, args.rebuild)
        return
    if args.child:
        child(args.child)
        return
    if args.explain_at:
        explain(datetime.datetime.fromisoformat(args.explain_at))
        return

    script = Path(__file__)
    size = ["--orders", str(args.orders), "--days", str(args.days)]
    found, _peak = run_child(script, ["--prepare", *size, *(["--rebuild"] if args.rebuild else [])])
    os.environ["BENCH_DATABASE_URL"] = found["url"]
    now = datetime.datetime.fromisoformat(found["now"])
    print(
        f"\n{found['orders']:,} orders, {found['events']:,} events over {found['days']} days; "
        f"refresh at {now:%Y-%m-%d %H:%M} UTC over the last 30 days; each run a process of its own\n"
    )
    header = (
        f"{'run':>3} {'wall s':>7} {'peak RSS MB':>11} {'(before)':>9} {'rows':>5}   "
        f"{'floor: scan s':>13} {'aggregate s':>11} {'samples':>9}"
    )
    print(header)
    print("-" * len(header))
    got = None
    for run in range(1, args.runs + 1):
        got, peak = run_child(script, ["--child", now.isoformat()])
        print(
            f"{run:>3} {got['wall']:>7.2f} {got['rss_after']:>11.1f} {got['rss_before']:>9.1f} {got['rows']:>5}   "
            f"{got['scan']:>13.2f} {got['aggregate']:>11.2f} {got['samples']:>9,}",
            flush=True,
        )
    if got is None:
        return
    print(
        f"\nsamples: {got['samples']:,} stage exits in the window ({got['missing']:,} without the step that began "
        f"the stage), {got['leaving']:,} counted by the scan; {got['groups']} figures."
    )
    print("floor scan: SELECT count(*) of the window's stage-leaving events (every event read: no index by time).")
    print("floor aggregate: percentile_cont over the same samples materialised beforehand (untimed).")
    with open("/proc/loadavg") as loadavg:
        print(f"load average: {loadavg.read().strip()}")
    print(f"peak RSS: the process's ru_maxrss right after the refresh (to its end, floors included: {peak:.1f} MB).")
    if args.explain:
        run_child(script, ["--explain-at", now.isoformat()])


if __name__ == "__main__":
    main()
