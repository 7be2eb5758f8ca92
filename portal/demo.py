"""Demo data: organisations, people and orders in every state (SPEC §6.3).

Every order is driven through ``orders.workflow`` and ``orders.carrier`` with
back-dated times, exactly as its merchant, provider, carrier, operator and
the deadline would have moved it, so its event log, fees and scans are real.
Running it again changes nothing that exists: organisations and people are
updated in place (passwords reset to the demo ones), orders already there are
skipped.

Two kinds of order: the present (``seed_orders``, ``DEMO-00001``…), open and
lately finished, in every state; and the past (``seed_history``,
``DEMO-H-00001``…), five weeks of finished orders per provider, so that the
stage durations, the forecasts and a replay of the rules have a history to
read from the first run. Each provider works at its own pace (``PACES``):
P-DEMO-1 is fast; P-DEMO-2 takes days over each stage, so that its orders
signed in now are forecast to miss their deadline, and some of its past ones
did (auto-refunded), while the fast provider's are on time.

The API keys and the carrier's signing secret are derived from one demo
secret (``DEMO_SECRET``, with a fixed default), so they are the same on every
run and on every machine: a key copied from the last run keeps working.
"""

import base64
import contextlib
import datetime
import hashlib
import hmac
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from orders import carrier, durations, workflow
from orders.choices import Action, AppraisalResult, BlockedStage, OrderState, ScanStatus
from orders.forecast import FORECAST_STATES
from orders.models import Order
from portal import apikeys, dashboard
from portal.choices import EventSource, OrganisationKind
from portal.env import env_str
from portal.models import ApiKey, CarrierIntegration, Organisation, User

S = OrderState
ORGANISATIONS = [
    ("PLATFORM", "安心鉴平台运营", OrganisationKind.PLATFORM, "0", "0"),
    ("M-DEMO-1", "潮玩优选旗舰店", OrganisationKind.MERCHANT, "0", "0"),
    ("M-DEMO-2", "名表汇官方店", OrganisationKind.MERCHANT, "0", "0"),
    ("P-DEMO-1", "华东鉴定中心", OrganisationKind.PROVIDER, "30.00", "12.00"),
    ("P-DEMO-2", "华南鉴定中心", OrganisationKind.PROVIDER, "45.00", "15.00"),
]
# username, organisation, superuser, language
PEOPLE = [
    ("admin", "PLATFORM", True, "zh-hans"),
    ("operator", "PLATFORM", False, "zh-hans"),
    ("operator-en", "PLATFORM", False, "en"),
    ("merchant1", "M-DEMO-1", False, "zh-hans"),
    ("merchant2", "M-DEMO-2", False, "zh-hans"),
    ("provider1", "P-DEMO-1", False, "zh-hans"),
    ("provider1-en", "P-DEMO-1", False, "en"),
    ("provider2", "P-DEMO-2", False, "zh-hans"),
]
ITEMS = [
    ("SKU-SNKR-AJ1", "Air Jordan 1 高帮 芝加哥配色 42码", "1899.00"),
    ("SKU-WATCH-SUB", "劳力士 潜航者型 116610LN", "68500.00"),
    ("SKU-BAG-LV", "路易威登 Speedy 25 手袋", "13200.00"),
    ("SKU-TOY-BB", "Bearbrick 1000% 限定款", "3680.00"),
    ("SKU-JADE-01", "和田玉 籽料手镯", "8800.00"),
    ("SKU-CARD-PKM", "宝可梦 PSA10 评级卡", "2450.00"),
]
BUYERS = [
    ("王小明", "13812345678", "上海市浦东新区世纪大道 100 号 12 楼"),
    ("李娜", "13998765432", "北京市朝阳区建国路 88 号 SOHO 现代城"),
    ("陈晓东", "13700001111", "广东省深圳市南山区科技园南区 6 栋"),
    ("张伟", "15811112222", "浙江省杭州市西湖区文三路 398 号"),
    ("刘洋", "18600003333", "四川省成都市高新区天府大道北段 1700 号"),
]
# The states orders end in, with how many of every hundred.
TARGETS = [
    (S.AWAITING_SHIPMENT, 8),
    (S.INBOUND, 8),
    ("pending_sign_in", 10),
    (S.SIGNED_IN, 8),
    (S.APPRAISED, 6),
    (S.INSPECTED, 6),
    (S.PACKED, 6),
    ("blocked", 5),
    (S.WAYBILL_PRINTED, 7),
    (S.OUTBOUND, 8),
    (S.DELIVERED, 7),
    (S.COMPLETED, 10),
    (S.RETURNED, 2),
    (S.REFUNDED, 3),
    (S.AUTO_REFUNDED, 3),
    ("offline", 1),
    ("split", 2),
]
# The happy path, step by step, and the state each step reaches.
PATH = [
    (Action.SHIP, S.INBOUND),
    (Action.CARRIER_DELIVERY, S.ARRIVED),
    (Action.SIGN_IN, S.SIGNED_IN),
    (Action.APPRAISE, S.APPRAISED),
    (Action.INSPECT, S.INSPECTED),
    (Action.PACK, S.PACKED),
    (Action.PRINT_WAYBILL, S.WAYBILL_PRINTED),
    (Action.CARRIER_PICKUP, S.OUTBOUND),
    (Action.CARRIER_DELIVERY, S.DELIVERED),
    (Action.CONFIRM, S.COMPLETED),
]
MERCHANTS = ["M-DEMO-1", "M-DEMO-2"]
PROVIDERS = ["P-DEMO-1", "P-DEMO-2"]
BLOCKED_STAGES = {
    S.SIGNED_IN: BlockedStage.ENTRY,
    S.APPRAISED: BlockedStage.INSPECTION,
    S.INSPECTED: BlockedStage.PACKING,
}
# The carriers of the journey to the buyer (the merchant's parcel comes by SF).
OUTBOUND_CARRIERS = ["SF", "SF", "SF", "JD"]
# The confirmation deadline the platform sets when an order is paid.
DEADLINE_AFTER_PAYMENT = timedelta(days=10)


@dataclass(frozen=True)
class Pace:
    """How long an order waits in each state before its next step, by state:
    the median in hours and the spread (sigma) of a log-normal wait."""

    waits: dict

    def wait(self, rng, state) -> timedelta:
        return _draw(rng, *self.waits[state])


# The merchant sending the item, the carrier bringing it to the provider,
# the buyer confirming: the same whoever the provider.
_SHARED_WAITS = {S.AWAITING_SHIPMENT: (10, 0.6), S.INBOUND: (30, 0.35), S.DELIVERED: (60, 0.7)}
PACES = {
    # Fast: a few hours over each of its stages, about a day and a half to the buyer.
    "P-DEMO-1": Pace(
        {
            **_SHARED_WAITS,
            S.ARRIVED: (2, 0.5),
            S.SIGNED_IN: (2.5, 0.5),
            S.APPRAISED: (1.5, 0.5),
            S.INSPECTED: (1, 0.5),
            S.PACKED: (0.8, 0.5),
            S.WAYBILL_PRINTED: (4, 0.5),
            S.OUTBOUND: (30, 0.35),
        }
    ),
    # Slow: a day or more over each stage, ten times the fast one. From the
    # sign-in, the 90th percentiles of what is left add up to about ten days:
    # more than an order signed in has left before its deadline.
    "P-DEMO-2": Pace(
        {
            **_SHARED_WAITS,
            S.ARRIVED: (8, 0.5),
            S.SIGNED_IN: (30, 0.5),
            S.APPRAISED: (20, 0.5),
            S.INSPECTED: (14, 0.5),
            S.PACKED: (10, 0.5),
            S.WAYBILL_PRINTED: (18, 0.5),
            S.OUTBOUND: (40, 0.35),
        }
    ),
}
FAST_PROVIDERS = frozenset({"P-DEMO-1"})
# A merchant who sends the item a week late (median hours, spread).
LATE_SHIPMENT = (150, 0.3)
# The past: this many orders per provider, paid over these days before now
# (the last a deadline and a day before now, so that every one is finished).
HISTORY_DAYS = 35
HISTORY_ORDERS_PER_PROVIDER = 60
# How the past orders went, with how many of every hundred; the pace decides
# whether each was delivered in time.
HISTORY_TARGETS = [("flow", 88), ("fail", 4), ("refund", 4), ("late_shipment", 4)]
# Past split groups: the provider, and how each ended (``_history_split``).
HISTORY_SPLITS = [("P-DEMO-1", "both_shipped"), ("P-DEMO-2", "both_shipped"), ("P-DEMO-1", "extra_refunded")]
DEMO_PASSWORD_SUFFIX = "-demo-2026"
# Public on purpose, like the demo passwords: set DEMO_SECRET for a demo that
# others can reach.
DEFAULT_DEMO_SECRET = "appraisal-portal-demo"
# Orders written per transaction: one commit per order was most of the
# seeding time, one commit for thousands would hold SQLite's write lock
# longer than a running web server or worker is willing to wait.
ORDERS_PER_TRANSACTION = 100


def password_for(username: str) -> str:
    return f"{username}{DEMO_PASSWORD_SUFFIX}"


def demo_secret() -> str:
    """The secret the demo keys are derived from: ``DEMO_SECRET`` or the default."""
    secret = env_str("DEMO_SECRET", DEFAULT_DEMO_SECRET).strip()
    if not secret:
        raise ImproperlyConfigured("DEMO_SECRET must not be empty; unset it for the default")
    return secret


def _derive(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def demo_key(secret: str, code: str) -> str:
    """The demo API key of organisation ``code``, in ``portal.apikeys``' format."""
    prefix = _derive(secret, f"api-key-prefix:{code}").hex()[: ApiKey.PREFIX_LENGTH]
    body = base64.urlsafe_b64encode(_derive(secret, f"api-key:{code}")).rstrip(b"=").decode()
    return f"{apikeys.KEY_PREFIX}_{prefix}_{body}"


def demo_carrier_secret(secret: str) -> str:
    """The demo carrier's webhook signing secret."""
    return _derive(secret, "carrier-webhook").hex()


@contextlib.contextmanager
def bulk_mode():
    """Settings for writing many orders at once.

    With DEBUG on every query is kept in memory and, on SQLite, its
    parameters are quoted by one more query: about half the seeding time.
    Each commit would also ask a worker to send notifications; the caller
    asks once at the end instead (``portal.notify.kick``).
    """
    with override_settings(DEBUG=False, NOTIFY_ENQUEUE=False):
        yield


def seed_people() -> list[dict]:
    """Create or refresh the demo organisations and logins; returns the logins."""
    orgs = {}
    for code, name, kind, appraisal_fee, logistics_fee in ORGANISATIONS:
        orgs[code], _ = Organisation.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "appraisal_fee": Decimal(appraisal_fee),
                "logistics_fee": Decimal(logistics_fee),
                "is_active": True,
            },
        )
    # Each hash takes a quarter of a second by design; the hashing releases
    # the GIL, so the eight of them run side by side.
    with ThreadPoolExecutor() as pool:
        hashes = dict(
            zip(
                [p[0] for p in PEOPLE],
                pool.map(lambda person: make_password(password_for(person[0])), PEOPLE),
                strict=True,
            )
        )
    logins = []
    for username, code, superuser, language in PEOPLE:
        user, _ = User.objects.get_or_create(username=username, defaults={"organisation": orgs[code]})
        user.organisation = orgs[code]
        user.is_superuser = user.is_staff = superuser
        user.is_active = True
        user.language = language
        user.email = f"{username}@demo.invalid"
        user.password = hashes[username]
        user.save()
        logins.append(
            {"username": username, "password": password_for(username), "organisation": code, "kind": orgs[code].kind}
        )
    return logins


DEMO_KEY_NAME = "demo key"
DEMO_CARRIER = "demo-carrier"


def seed_keys(secret: str) -> dict:
    """The API key of every demo organisation, derived from ``secret``: the
    same on every run. Other demo keys (of another secret, or the random ones
    earlier versions made) are revoked."""
    keys = {}
    for code, *_ in ORGANISATIONS:
        org = Organisation.objects.get(code=code)
        keys[code] = demo_key(secret, code)
        kept = apikeys.install(org, DEMO_KEY_NAME, keys[code])
        for old in org.api_keys.active().filter(name=DEMO_KEY_NAME).exclude(pk=kept.pk):
            apikeys.revoke(old)
    return keys


def seed_carrier(secret: str) -> str:
    """The demo carrier integration's signing secret, derived from ``secret``."""
    integration, _ = CarrierIntegration.objects.update_or_create(
        name=DEMO_CARRIER, defaults={"secret": demo_carrier_secret(secret), "carrier_codes": "SF", "is_active": True}
    )
    return integration.secret


def seed_orders(count: int, *, now=None, seed: int = 2026) -> int:
    """Create up to ``count`` demo orders ``DEMO-00001``…, open and lately
    finished, in every state; returns how many were new."""
    now = now or timezone.now()
    rng = random.Random(seed)
    cast = _cast()
    existing = _existing()
    targets = [t for t, weight in TARGETS for _ in range(weight)]
    created = number = 0
    batch_end = 0
    with contextlib.ExitStack() as batch:  # an error rolls back the open batch only
        while number < count:
            if number >= batch_end:
                batch.close()
                batch.enter_context(transaction.atomic())
                batch_end = number + ORDERS_PER_TRANSACTION
            target = rng.choice(targets)
            size = rng.choice([2, 3]) if target == "split" else 1
            size = min(size, count - number)
            merchant = rng.choice(MERCHANTS)
            provider = rng.choice(PROVIDERS)
            plan = _plan(rng, now, target, provider)
            item, buyer = rng.choice(ITEMS), rng.choice(BUYERS)
            trade_no = f"T{now:%Y}{seed}{number + 1:06d}"
            for member in range(size):
                number += 1
                order_no = f"DEMO-{number:05d}"
                if order_no in existing:
                    continue
                if member > 0:
                    # The extra orders of a split group: no appraisal needed,
                    # some still without a waybill (they can never confirm).
                    plan = _extra_of_split(rng, now, plan, rng.choice([S.APPRAISED, S.DELIVERED]))
                with transaction.atomic():  # an order that fails leaves nothing behind
                    (order,) = _create(cast, [_fields(cast, order_no, trade_no, merchant, item, buyer, plan)])
                    _drive(order, plan, cast)
                created += 1
    refresh_figures(now)
    return created


def seed_history(*, now=None, days: int = HISTORY_DAYS, seed: int = 2026) -> int:
    """Create the demo's past: ``HISTORY_ORDERS_PER_PROVIDER`` orders per
    provider, ``DEMO-H-00001``…, paid over the ``days`` before ``now`` and all
    finished (their deadlines passed at least a day ago), and the split groups
    of ``HISTORY_SPLITS``; returns how many were new.

    Each order goes at its provider's pace (``PACES``) from its payment on
    and ends as that pace brings it: delivered and confirmed by the buyer (or
    at the deadline), returned after a failed appraisal, refunded before
    shipment, or auto-refunded at its deadline when it was not delivered in
    time (mostly the slow provider's, and parcels the merchant sent late).
    """
    now = now or timezone.now()
    # The history's own: the orders of ``seed_orders`` are the same with it or without.
    rng = random.Random(seed + 1)
    cast = _cast()
    existing = _existing()
    # The last order paid was due, and finished, a day before now.
    first, last = now - timedelta(days=days), now - DEADLINE_AFTER_PAYMENT - timedelta(days=1)
    kinds = [kind for kind, weight in HISTORY_TARGETS for _ in range(weight)]
    trades = []  # (paid_at, [plan, …]): one plan per order of the trade
    for provider in PROVIDERS:
        for index in range(HISTORY_ORDERS_PER_PROVIDER):
            # Spread evenly: one payment in each equal slice of the history.
            paid_at = first + (last - first) * ((index + rng.random()) / HISTORY_ORDERS_PER_PROVIDER)
            trades.append((paid_at, [_history_plan(rng, provider, paid_at, rng.choice(kinds))]))
    for provider, ending in HISTORY_SPLITS:
        # Within the last 30 days, where a replay of them looks.
        paid_at = max(first, now - timedelta(days=rng.uniform(12, 25)))
        trades.append((paid_at, _history_split(rng, provider, paid_at, ending)))
    trades.sort(key=lambda trade: trade[0])
    created = 0
    for start in range(0, len(trades), ORDERS_PER_TRANSACTION):
        rows, plans = [], []
        for number, (_paid_at, members) in enumerate(trades[start : start + ORDERS_PER_TRANSACTION], start + 1):
            merchant, item, buyer = rng.choice(MERCHANTS), rng.choice(ITEMS), rng.choice(BUYERS)
            trade_no = f"TH{seed}{number:05d}"
            for member, plan in enumerate(members, 1):
                order_no = f"DEMO-H-{number:05d}" + (f"-{member}" if len(members) > 1 else "")
                if order_no not in existing:
                    rows.append(_fields(cast, order_no, trade_no, merchant, item, buyer, plan))
                    plans.append(plan)
        with transaction.atomic():  # one batch: created at once, then driven one by one
            for order, plan in zip(_create(cast, rows), plans, strict=True):
                _drive(order, plan, cast)
        created += len(rows)
    refresh_figures(now)
    return created


def refresh_figures(now) -> None:
    """What beat keeps up to date, computed now for the demo's orders.

    The dashboard's scorecard and the forecasts read the stage durations, the
    dashboard's charts the tallies of open orders and duplicate fees; beat
    refreshes them every quarter of an hour and every minute, the demo shows
    them at once.
    """
    durations.refresh(now)
    dashboard.refresh_tallies(now)


# --- how each order goes ------------------------------------------------------------


class Step(NamedTuple):
    action: str
    source: str  # the state it leaves: what the wait before it is timed by
    reached: str


@dataclass
class Plan:
    """One demo order: its provider, when it was paid, its deadline, and what
    happens to it when (``moves``: an action, or ``OFFLINE_SCAN``, and its
    time, in time order)."""

    provider: str
    paid_at: datetime.datetime
    deadline: datetime.datetime
    result: str = AppraisalResult.PASS
    carrier: str = "SF"  # the outbound journey's
    moves: list = field(default_factory=list)
    blocked_stage: str = ""
    refund_reason: str = ""


# A carrier scan that names the order under another tracking number (invariant 1).
OFFLINE_SCAN = "offline_scan"
MINUTE = timedelta(minutes=1)


def _route(stop, result) -> list[Step]:
    """The steps from payment to ``stop`` (not the buyer's confirmation:
    the plan chooses between it and the deadline)."""
    route, source = [], S.AWAITING_SHIPMENT
    for action, reached in _steps_to(S.DELIVERED if stop == S.COMPLETED else stop):
        if result == AppraisalResult.NOT_REQUIRED and action in (Action.INSPECT, Action.PACK):
            continue
        if reached == S.DELIVERED and result == AppraisalResult.FAIL:
            reached = S.RETURNED
        route.append(Step(action, source, reached))
        source = reached
    return route


def _steps_to(stop) -> list:
    if stop == S.AWAITING_SHIPMENT:
        return []
    if stop == S.RETURNED:
        stop = S.DELIVERED
    return PATH[: [reached for _, reached in PATH].index(stop) + 1]


def _waits(rng, provider, route, *, late_shipment=False) -> list[timedelta]:
    """How long each step of ``route`` came after the one before it, at ``provider``'s pace."""
    waits = [PACES[provider].wait(rng, step.source) for step in route]
    if late_shipment and route:
        waits[0] = _draw(rng, *LATE_SHIPMENT)
    return waits


def _draw(rng, median_hours, spread) -> timedelta:
    """A log-normal wait: half of them shorter than ``median_hours``."""
    return timedelta(hours=rng.lognormvariate(math.log(median_hours), spread))


def _fit(waits, room) -> list[timedelta]:
    """``waits``, shrunk evenly when they add up to more than ``room``."""
    total = sum(waits, timedelta(0))
    return waits if total <= room else [wait * (room / total) for wait in waits]


def _moves(route, start, waits) -> list:
    moves, when = [], start
    for step, wait in zip(route, waits, strict=True):
        when += wait
        moves.append((step.action, when))
    return moves


def _hours(rng, low, high) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def _finish(rng, plan) -> Plan:
    """A delivered order completes: the buyer confirms, or the deadline does."""
    confirmed = plan.moves[-1][1] + PACES[plan.provider].wait(rng, S.DELIVERED)
    plan.moves.append((Action.CONFIRM, confirmed) if confirmed < plan.deadline else (Action.EXPIRE, plan.deadline))
    return plan


def _plan(rng, now, target, provider) -> Plan:
    """An order of the present that ends in ``target`` (one of ``TARGETS``)."""
    result, stop = AppraisalResult.PASS, target
    blocked = offline = refund = False
    if target == "pending_sign_in":
        stop = S.ARRIVED
    elif target == "blocked":
        stop, blocked = rng.choice([S.SIGNED_IN, S.APPRAISED, S.INSPECTED]), True
    elif target == "offline":
        stop, offline = S.PACKED, True
    elif target == "split":
        stop = S.DELIVERED
    elif target == S.RETURNED:
        result = AppraisalResult.FAIL
    elif target == S.REFUNDED:
        stop, refund = rng.choice([S.AWAITING_SHIPMENT, S.INBOUND, S.ARRIVED]), True
    elif target == S.AUTO_REFUNDED:
        stop = rng.choice([S.ARRIVED, S.APPRAISED, S.WAYBILL_PRINTED])
    route = _route(stop, result)
    waits = _waits(rng, provider, route)
    carrier = rng.choice(OUTBOUND_CARRIERS)
    if target in (S.COMPLETED, S.AUTO_REFUNDED):
        # The deadline passed lately: delivered before it and confirmed (by
        # the buyer, or at the deadline), or still on its way and lost.
        deadline = now - (_hours(rng, 1, 100) if target == S.COMPLETED else _hours(rng, 1, 48))
        room = DEADLINE_AFTER_PAYMENT - timedelta(hours=2)
        for _attempt in range(20 if target == S.COMPLETED else 0):
            if sum(waits, timedelta(0)) < room:
                break
            waits = _waits(rng, provider, route)
        paid_at = deadline - DEADLINE_AFTER_PAYMENT
        plan = Plan(provider, paid_at, deadline, result, carrier, _moves(route, paid_at, _fit(waits, room)))
        if target == S.AUTO_REFUNDED:
            plan.moves.append((Action.EXPIRE, deadline))
            return plan
        return _finish(rng, plan)
    # Open, refunded or returned: the last step a while ago (long ago for a
    # parcel waiting to be signed for, or an order stuck in its state), the
    # ones before it at the provider's pace.
    if stop == S.ARRIVED:
        idle = _hours(rng, 2, 60)
    elif target != S.RETURNED and rng.random() < 0.3:
        idle = _hours(rng, 30, 200)  # stuck: long in its state
    else:
        idle = _hours(rng, 0.2, 30)
    end = now - _hours(rng, 0.1, 2) if refund else now
    last = end - idle
    paid_at = last - sum(waits, timedelta(0))
    plan = Plan(provider, paid_at, paid_at + DEADLINE_AFTER_PAYMENT, result, carrier, _moves(route, paid_at, waits))
    if target == S.RETURNED:
        plan.deadline = max(plan.deadline, last + _hours(rng, 1, 48))
        return plan
    plan.deadline = max(plan.deadline, now + _hours(rng, 60, 300))
    if stop in FORECAST_STATES and provider in FAST_PROVIDERS:
        # A fast provider is on time: what is left of its flow takes three days at most.
        plan.deadline = max(plan.deadline, now + _hours(rng, 120, 300))
    elif stop not in (S.DELIVERED, S.COMPLETED, S.RETURNED) and rng.random() < 0.2:
        plan.deadline = now + _hours(rng, 4, 47)  # deadline at risk
    if blocked:
        plan.blocked_stage = BLOCKED_STAGES[stop]
        plan.moves.append((Action.REPORT_BLOCKED, last + (now - last) * rng.uniform(0.05, 0.5)))
    if offline:
        plan.moves.append((OFFLINE_SCAN, last + (now - last) * rng.uniform(0.1, 0.9)))
    if refund:
        plan.refund_reason = "买家在商家发货前申请退款"
        plan.moves.append((Action.REFUND, end))
    return plan


def _extra_of_split(rng, now, plan, stop) -> Plan:
    """An extra order of a split group of the present: paid with the first,
    no appraisal needed, stopped at ``stop`` a while before now."""
    route = _route(stop, AppraisalResult.NOT_REQUIRED)
    room = max(now - _hours(rng, 0.2, 10) - plan.paid_at, len(route) * MINUTE)
    waits = _fit(_waits(rng, plan.provider, route), room)
    moves = _moves(route, plan.paid_at, waits)
    return Plan(plan.provider, plan.paid_at, plan.deadline, AppraisalResult.NOT_REQUIRED, plan.carrier, moves)


def _history_plan(rng, provider, paid_at, kind, result=AppraisalResult.PASS) -> Plan:
    """A past order of ``kind`` (one of ``HISTORY_TARGETS``), paid at
    ``paid_at``: each step at the provider's pace, until it is finished or
    its deadline comes first."""
    deadline = paid_at + DEADLINE_AFTER_PAYMENT
    if kind == "fail":
        result = AppraisalResult.FAIL
    plan = Plan(provider, paid_at, deadline, result, rng.choice(OUTBOUND_CARRIERS))
    if kind == "refund":
        # The buyer refunded before the parcel reached the provider.
        route = _route(rng.choice([S.AWAITING_SHIPMENT, S.INBOUND, S.ARRIVED]), result)
        plan.moves = _moves(route, paid_at, _waits(rng, provider, route))
        refunded = (plan.moves[-1][1] if plan.moves else paid_at) + _hours(rng, 2, 48)
        plan.refund_reason = "买家在商家发货前申请退款"
        plan.moves.append((Action.REFUND, refunded))
        return plan
    route = _route(S.DELIVERED, result)
    waits = _waits(rng, provider, route, late_shipment=kind == "late_shipment")
    plan.moves = [move for move in _moves(route, paid_at, waits) if move[1] < deadline]
    if len(plan.moves) < len(route):
        plan.moves.append((Action.EXPIRE, deadline))  # not delivered in time: a loss
    elif result != AppraisalResult.FAIL:
        _finish(rng, plan)
    return plan


def _history_split(rng, provider, paid_at, ending) -> list[Plan]:
    """The orders of a past split group of two, both completed, the second
    kept as "no appraisal needed": both waybills picked up
    (``both_shipped``), or the second refunded at once (``extra_refunded``)."""
    first = second = None
    while first is None or not _completes(first):
        first = _history_plan(rng, provider, paid_at, "flow")
    if ending == "extra_refunded":
        second = Plan(provider, paid_at, first.deadline, AppraisalResult.NOT_REQUIRED, first.carrier)
        second.refund_reason = "拆单：多余订单退款，改为普通订单重新购买"
        second.moves = [(Action.REFUND, paid_at + _hours(rng, 2, 12))]
        return [first, second]
    while second is None or not _completes(second):
        second = _history_plan(rng, provider, paid_at, "flow", AppraisalResult.NOT_REQUIRED)
    return [first, second]


def _completes(plan) -> bool:
    """Whether the plan's order ends completed: confirmed, or delivered
    before its deadline came."""
    actions = [action for action, _when in plan.moves]
    if actions[-1] == Action.CONFIRM:
        return True
    return actions[-1] == Action.EXPIRE and Action.PRINT_WAYBILL in actions and actions[-2] == Action.CARRIER_DELIVERY


# --- writing them ---------------------------------------------------------------


@dataclass
class Cast:
    platform: workflow.Actor
    operator: workflow.Actor
    orgs: dict  # by code
    merchants: dict  # the merchant's staff, by organisation id
    providers: dict  # the provider's staff, by organisation id


def _cast() -> Cast:
    orgs = {o.code: o for o in Organisation.objects.all()}
    users = User.objects.filter(username__in=["merchant1", "merchant2", "provider1", "provider2"])
    return Cast(
        platform=workflow.Actor.of_organisation(orgs["PLATFORM"], EventSource.PLATFORM),
        operator=workflow.Actor.of_user(User.objects.get(username="operator")),
        orgs=orgs,
        merchants={u.organisation_id: workflow.Actor.of_user(u) for u in users if u.username.startswith("merchant")},
        providers={u.organisation_id: workflow.Actor.of_user(u) for u in users if u.username.startswith("provider")},
    )


def _existing() -> set:
    return set(Order.objects.filter(order_no__startswith="DEMO-").values_list("order_no", flat=True))


def _fields(cast, order_no, trade_no, merchant, item, buyer, plan) -> dict:
    sku, title, price = item
    return {
        "order_no": order_no,
        "trade_no": trade_no,
        "merchant": cast.orgs[merchant],
        "provider": cast.orgs[plan.provider],
        "sku": sku,
        "item_title": title,
        "quantity": 1,
        "amount": Decimal(price),
        "buyer_name": buyer[0],
        "buyer_phone": buyer[1],
        "buyer_address": buyer[2],
        "paid_at": plan.paid_at,
        "auto_confirm_at": plan.deadline,
    }


def _create(cast, rows) -> list[Order]:
    """The orders of ``rows``, created at once by the platform; a refusal raises."""
    orders = []
    for creation in workflow.create_orders(cast.platform, rows):
        if creation.error is not None:
            raise creation.error
        orders.append(creation.order)
    return orders


def _drive(order, plan, cast):
    """Take the plan's moves on ``order``, as its merchant, provider, carrier,
    operator and the deadline would have, each at its time."""
    merchant = cast.merchants[order.merchant_id]
    provider = cast.providers[order.provider_id]
    for action, when in plan.moves:
        if action == Action.SHIP:
            order = workflow.perform(
                order, action, merchant, occurred_at=when, carrier="SF", tracking_no=f"SF{order.pk:010d}"
            )
        elif action in (Action.CARRIER_PICKUP, Action.CARRIER_DELIVERY):
            # The inbound parcel by its tracking number, the outbound one by its online waybill.
            outbound = bool(order.waybill_no)
            carrier.record_scan(
                carrier=plan.carrier if outbound else order.inbound_carrier,
                tracking_no=order.waybill_no if outbound else order.inbound_tracking_no,
                status=ScanStatus.PICKED_UP if action == Action.CARRIER_PICKUP else ScanStatus.DELIVERED,
                occurred_at=when,
            )
            order.refresh_from_db()
        elif action == OFFLINE_SCAN:
            carrier.record_scan(
                carrier="YTO",
                tracking_no=f"YT{order.pk:010d}",
                status=ScanStatus.PICKED_UP,
                occurred_at=when,
                order_no=order.order_no,
            )
            order.refresh_from_db()
        elif action == Action.APPRAISE:
            order = workflow.perform(order, action, provider, occurred_at=when, result=plan.result)
        elif action == Action.REPORT_BLOCKED:
            order = workflow.perform(
                order, action, provider, occurred_at=when, stage=plan.blocked_stage, reason="ERP 系统报错，无法继续"
            )
        elif action == Action.CONFIRM:
            order = workflow.perform(order, action, cast.operator, occurred_at=when)
        elif action == Action.REFUND:
            order = workflow.perform(order, action, cast.operator, occurred_at=when, reason=plan.refund_reason)
        elif action == Action.EXPIRE:
            order = workflow.perform(order, action, workflow.Actor.system(EventSource.SWEEP), occurred_at=when)
        else:
            order = workflow.perform(order, action, provider, occurred_at=when)
    return order
