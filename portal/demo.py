"""Demo data: organisations, people and orders in every state (SPEC §6.3).

Every order is driven through ``orders.workflow`` and ``orders.carrier`` with
back-dated times, exactly as its merchant, provider, carrier and operator
would have moved it, so its event log, fees and scans are real. Running it
again changes nothing that exists: organisations and people are updated in
place (passwords reset to the demo ones), orders already there are skipped.

The API keys and the carrier's signing secret are derived from one demo
secret (``DEMO_SECRET``, with a fixed default), so they are the same on every
run and on every machine: a key copied from the last run keeps working.
"""

import base64
import contextlib
import hashlib
import hmac
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from orders import carrier, durations, workflow
from orders.choices import Action, AppraisalResult, BlockedStage, OrderState, ScanStatus
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
DEMO_PASSWORD_SUFFIX = "-demo-2026"
# Public on purpose, like the demo passwords: set DEMO_SECRET for a demo that
# others can reach.
DEFAULT_DEMO_SECRET = "appraisal-portal-demo"
# Orders written per transaction: one commit per order was most of the
# seeding time, one commit for thousands would hold SQLite's write lock
# longer than a running web server or worker is willing to wait.
ORDERS_PER_TRANSACTION = 100


@dataclass
class Cast:
    operator: User
    merchants: dict
    providers: dict


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
    """Create up to ``count`` demo orders ``DEMO-00001``…; returns how many were new."""
    now = now or timezone.now()
    rng = random.Random(seed)
    cast = Cast(
        operator=User.objects.get(username="operator"),
        merchants={u.organisation_id: u for u in User.objects.filter(username__in=["merchant1", "merchant2"])},
        providers={u.organisation_id: u for u in User.objects.filter(username__in=["provider1", "provider2"])},
    )
    orgs = {o.code: o for o in Organisation.objects.all()}
    platform = workflow.Actor.of_organisation(orgs["PLATFORM"], EventSource.PLATFORM)
    existing = set(Order.objects.filter(order_no__startswith="DEMO-").values_list("order_no", flat=True))
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
            plan = _plan(rng, now, target)
            merchant = rng.choice(["M-DEMO-1", "M-DEMO-2"])
            provider = rng.choice(["P-DEMO-1", "P-DEMO-2"])
            sku, title, price = rng.choice(ITEMS)
            buyer = rng.choice(BUYERS)
            trade_no = f"T{now:%Y}{seed}{number + 1:06d}"
            for member in range(size):
                number += 1
                order_no = f"DEMO-{number:05d}"
                if order_no in existing:
                    continue
                with transaction.atomic():  # an order that fails leaves nothing behind
                    order = workflow.create_order(
                        platform,
                        order_no=order_no,
                        trade_no=trade_no,
                        merchant=orgs[merchant],
                        provider=orgs[provider],
                        sku=sku,
                        item_title=title,
                        quantity=1,
                        amount=Decimal(price),
                        buyer_name=buyer[0],
                        buyer_phone=buyer[1],
                        buyer_address=buyer[2],
                        paid_at=plan["paid_at"],
                        auto_confirm_at=plan["deadline"],
                    )
                    member_plan = dict(plan)
                    if size > 1 and member > 0:
                        # The extra orders of a split group: no appraisal needed,
                        # some still without a waybill (they can never confirm).
                        member_plan.update(
                            result=AppraisalResult.NOT_REQUIRED, stop=rng.choice([S.APPRAISED, S.DELIVERED])
                        )
                    _drive(order, member_plan, cast, rng)
                created += 1
    # The dashboard's scorecard reads the stage durations, and its charts the
    # tallies of open orders and duplicate fees; beat refreshes them every
    # quarter of an hour and every minute, the demo shows them at once.
    durations.refresh(now)
    dashboard.refresh_tallies(now)
    return created


def _plan(rng, now, target) -> dict:
    """When the order was paid, its deadline, where it stops and what happens on the way."""
    plan = {"result": AppraisalResult.PASS, "blocked": False, "offline": False, "refund": False, "expire": False}
    stop = target
    if target == "pending_sign_in":
        stop = S.ARRIVED
    elif target == "blocked":
        stop, plan["blocked"] = rng.choice([S.SIGNED_IN, S.APPRAISED, S.INSPECTED]), True
    elif target == "offline":
        stop, plan["offline"] = S.PACKED, True
    elif target == "split":
        stop = S.DELIVERED
    elif target == S.RETURNED:
        plan["result"] = AppraisalResult.FAIL
    elif target == S.REFUNDED:
        stop, plan["refund"] = rng.choice([S.AWAITING_SHIPMENT, S.INBOUND, S.ARRIVED]), True
    elif target == S.AUTO_REFUNDED:
        stop, plan["expire"] = rng.choice([S.ARRIVED, S.APPRAISED, S.WAYBILL_PRINTED]), True
    steps = _steps_to(stop)
    if target in (S.COMPLETED, S.RETURNED, S.AUTO_REFUNDED):
        age = rng.uniform(200, 500)
    elif rng.random() < 0.3:
        age = rng.uniform(80, 300)  # stuck: long in its state
    else:
        age = rng.uniform(2, 60) + 6 * len(steps)
    paid_at = now - timedelta(hours=age)
    if target == S.AUTO_REFUNDED:
        deadline = now - timedelta(hours=rng.uniform(1, 48))
    elif stop not in (S.DELIVERED, S.COMPLETED, S.RETURNED) and rng.random() < 0.2:
        deadline = now + timedelta(hours=rng.uniform(4, 47))  # deadline at risk
    else:
        deadline = max(paid_at + timedelta(days=15), now + timedelta(hours=rng.uniform(60, 300)))
    if target == S.COMPLETED:
        deadline = now - timedelta(hours=rng.uniform(1, 100))
    plan.update(paid_at=paid_at, deadline=deadline, stop=stop, now=now)
    return plan


def _steps_to(stop) -> list:
    if stop == S.AWAITING_SHIPMENT:
        return []
    if stop == S.RETURNED:
        stop = S.DELIVERED
    return PATH[: [reached for _, reached in PATH].index(stop) + 1]


def _drive(order, plan, cast, rng):
    steps = _steps_to(plan["stop"])
    if plan["result"] == AppraisalResult.NOT_REQUIRED:
        steps = [s for s in steps if s[0] not in (Action.INSPECT, Action.PACK)]
    # The last step happened a while ago (long ago for a parcel waiting to be
    # signed for), but always after the order was paid.
    age = (plan["now"] - plan["paid_at"]).total_seconds() / 3600
    idle = rng.uniform(2, 60) if plan["stop"] == S.ARRIVED else rng.uniform(0.2, 30)
    end = plan["now"] - timedelta(hours=min(idle, age * 0.6))
    if plan["expire"] or plan["stop"] == S.COMPLETED:
        end = min(end, plan["deadline"] - timedelta(hours=2))
    span = max((end - plan["paid_at"]).total_seconds(), 60)
    times = sorted(plan["paid_at"] + timedelta(seconds=rng.uniform(0.05, 1) * span) for _ in steps)
    merchant = workflow.Actor.of_user(cast.merchants[order.merchant_id])
    provider = workflow.Actor.of_user(cast.providers[order.provider_id])
    operator = workflow.Actor.of_user(cast.operator)
    for (action, reached), when in zip(steps, times, strict=True):
        if reached == S.DELIVERED and plan["result"] == AppraisalResult.FAIL:
            reached = S.RETURNED
        if action == Action.SHIP:
            order = workflow.perform(
                order, action, merchant, occurred_at=when, carrier="SF", tracking_no=f"SF{order.pk:010d}"
            )
        elif action in (Action.CARRIER_PICKUP, Action.CARRIER_DELIVERY):
            number = (
                order.waybill_no if action == Action.CARRIER_PICKUP or order.waybill_no else order.inbound_tracking_no
            )
            status = ScanStatus.PICKED_UP if action == Action.CARRIER_PICKUP else ScanStatus.DELIVERED
            carrier.record_scan(carrier="SF", tracking_no=number, status=status, occurred_at=when)
            order.refresh_from_db()
        elif action == Action.APPRAISE:
            order = workflow.perform(order, action, provider, occurred_at=when, result=plan["result"])
        elif action == Action.CONFIRM:
            order = workflow.perform(order, action, operator, occurred_at=when)
        else:
            order = workflow.perform(order, action, provider, occurred_at=when)
        if plan["blocked"] and reached == plan["stop"]:
            stage = {S.SIGNED_IN: BlockedStage.ENTRY, S.APPRAISED: BlockedStage.INSPECTION}.get(
                reached, BlockedStage.PACKING
            )
            order = workflow.perform(
                order, Action.REPORT_BLOCKED, provider, occurred_at=when, stage=stage, reason="ERP 系统报错，无法继续"
            )
    if plan["offline"]:
        carrier.record_scan(
            carrier="YTO",
            tracking_no=f"YT{order.pk:010d}",
            status=ScanStatus.PICKED_UP,
            occurred_at=plan["now"] - timedelta(hours=rng.uniform(1, 20)),
            order_no=order.order_no,
        )
        order.refresh_from_db()
    if plan["refund"]:
        order = workflow.perform(
            order,
            Action.REFUND,
            operator,
            occurred_at=plan["now"] - timedelta(hours=rng.uniform(0.1, 2)),
            reason="买家在商家发货前申请退款",
        )
    if plan["expire"]:
        workflow.perform(order, Action.EXPIRE, workflow.Actor.system(EventSource.SWEEP), occurred_at=plan["deadline"])
