"""Pages rendered in zh-hans hold no English of ours.

Two checks over the text a person sees: no source string of the catalogue
appears untranslated, and no run of English words appears at all (which
also catches a string someone forgot to mark for translation).
"""

import html
import re
from pathlib import Path

import polib
import pytest
from django.urls import reverse

from orders import inputs, workflow, worklists
from orders.choices import (
    EVENT_PARAMETERS,
    Action,
    AppraisalResult,
    BlockedStage,
    OrderState,
    ScanStatus,
    VerifyOutcome,
)
from portal.choices import EventSource
from risks import cases
from tests.factories import advance, new_order, platform_actor, scan

CATALOGUE = Path(__file__).resolve().parents[1] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{3,}(?:[ ,'-]+[A-Za-z]{3,})+\b")


def visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def english_fragments():
    fragments = set()
    for entry in polib.pofile(str(CATALOGUE)):
        if entry.msgstr == entry.msgid:
            continue
        for part in re.split(r"%\(\w+\)s|%s|“|”", entry.msgid):
            part = part.strip(" .,:;()")
            # A literal kept as it is in Chinese (a header name, say) is not English of ours.
            if len(part) >= 5 and re.search(r"[a-z]{3}", part) and part not in entry.msgstr:
                fragments.add(part)
    return fragments


@pytest.fixture
def chinese(personas):
    # Names are data, not our strings: give the organisations Chinese ones.
    for user in personas.values():
        user.language = "zh-hans"
        user.save(update_fields=["language"])
        user.organisation.name = f"机构{user.organisation.code}"
        user.organisation.save(update_fields=["name"])
    return personas


def pages(merchant_org, provider_org):
    title = {
        "item_title": "劳力士 潜航者型",
        "sku": "116610",
        "buyer_name": "王小明",
        "buyer_address": "上海市浦东新区",
    }
    arrived = advance(new_order(merchant_org, provider_org, **title), OrderState.ARRIVED)
    signed = advance(new_order(merchant_org, provider_org, **title), OrderState.SIGNED_IN)
    delivered = advance(new_order(merchant_org, provider_org, **title), OrderState.DELIVERED)
    shipped = advance(new_order(merchant_org, provider_org, **title), OrderState.WAYBILL_PRINTED)
    fresh = new_order(merchant_org, provider_org, **title)
    for _ in range(2):
        new_order(merchant_org, provider_org, trade_no="T-ZH", **title)
    from risks.models import RiskCase
    from risks.sweep import run_sweep

    run_sweep()
    split_case = RiskCase.objects.get(rule="split_order")
    from orders import workflow
    from orders.models import Order
    from portal.models import Notification
    from risks import cases, escalations

    blocked = Order.objects.get(pk=signed.pk)
    workflow.perform(
        blocked, "report_blocked", workflow.Actor.of_organisation(provider_org), stage="entry", reason="系统报错"
    )
    escalation = RiskCase.objects.get(rule="flow_blocked").escalations.get()
    escalations.comment(escalation, workflow.Actor.of_organisation(escalation.raised_by_organisation), "请尽快处理")
    cases.escalate_order(fresh, workflow.Actor.of_organisation(merchant_org), "麻烦看一下")
    assert Notification.objects.exists()
    return [
        *[("provider", reverse("orders:worklist", args=[w.slug])) for w in worklists.WORKLISTS],
        *[("provider", reverse("orders:station", args=[slug])) for slug in worklists.STATIONS],
        ("provider", reverse("orders:labels") + f"?select={shipped.order_no}&select={arrived.order_no}"),
        ("provider", reverse("orders:detail", args=[shipped.order_no]) + "?worklist=awaiting-pickup"),
        ("provider", reverse("orders:detail", args=[arrived.order_no])),
        ("provider", reverse("orders:detail", args=[signed.order_no])),
        ("provider", reverse("orders:list")),
        ("merchant", reverse("orders:list")),
        ("merchant", reverse("orders:detail", args=[fresh.order_no])),
        ("operator", reverse("operator-home")),
        ("operator", reverse("orders:list")),
        ("operator", reverse("orders:detail", args=[arrived.order_no])),
        ("operator", reverse("orders:detail", args=[delivered.order_no])),
        ("merchant", reverse("api-keys")),
        ("provider", reverse("risks:cases")),
        ("merchant", reverse("risks:case", args=[split_case.pk])),
        ("provider", reverse("risks:case", args=[split_case.pk])),
        ("operator", reverse("risks:escalations")),
        ("operator", reverse("risks:escalation", args=[escalation.pk])),
        ("provider", reverse("risks:escalation", args=[escalation.pk])),
        ("merchant", reverse("inbox")),
        ("merchant", reverse("notification-preferences")),
    ]


def test_main_pages_in_chinese_hold_no_english_of_ours(client, chinese, merchant_org, provider_org):
    fragments = english_fragments()
    assert len(fragments) > 50, "the catalogue is read"
    checked = 0
    for persona, url in pages(merchant_org, provider_org):
        client.force_login(chinese[persona])
        response = client.get(url)
        assert response.status_code == 200, url
        text = visible_text(response.content.decode())
        leftovers = sorted(f for f in fragments if f in text)
        assert leftovers == [], (url, leftovers)
        runs = ENGLISH_RUN.findall(text)
        assert runs == [], (url, runs)
        checked += 1
    assert checked == len(worklists.WORKLISTS) + len(worklists.STATIONS) + 20


def test_scan_answers_in_chinese_hold_no_english_of_ours(client, chinese, merchant_org, provider_org):
    fragments = english_fragments()
    arrived = advance(new_order(merchant_org, provider_org, item_title="手袋"), OrderState.ARRIVED)
    signed = advance(new_order(merchant_org, provider_org, item_title="手袋"), OrderState.SIGNED_IN)
    client.force_login(chinese["provider"])
    scans = [
        ("pending-sign-in", arrived.inbound_tracking_no, {}),
        ("pending-sign-in", arrived.inbound_tracking_no, {}),
        ("pending-sign-in", "SF404404404", {}),
        ("to-pack", signed.order_no, {}),
        ("to-appraise", signed.order_no, {}),
        ("to-appraise", signed.order_no, {"result": "pass"}),
    ]
    outcomes = []
    for slug, code, extra in scans:
        response = client.post(
            reverse("orders:station", args=[slug]), {"code": code, **extra}, HTTP_X_REQUESTED_WITH="scan-station"
        )
        text = visible_text(response.content.decode())
        assert sorted(f for f in fragments if f in text) == [], (slug, code, text)
        assert ENGLISH_RUN.findall(text) == [], (slug, code, text)
        outcomes += re.findall(r'data-outcome="(\w+)"', response.content.decode())
    assert outcomes == ["done", "already", "not_found", "not_ready", "needs_choice", "done"]


def test_the_login_page_follows_the_browser_and_speaks_chinese_by_default(client, db):
    text = visible_text(client.get(reverse("login")).content.decode())
    assert "登录" in text and ENGLISH_RUN.findall(text) == []
    text = visible_text(client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "Log in" in text


def test_a_person_switches_language_and_it_is_saved(client, merchant):
    client.force_login(merchant)
    client.post(reverse("set-language"), {"language": "zh-hans", "next": reverse("orders:list")})
    merchant.refresh_from_db()
    assert merchant.language == "zh-hans"
    assert "我的订单" in client.get(reverse("orders:list")).content.decode()
    response = client.post(reverse("set-language"), {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == reverse("home")
    merchant.refresh_from_db()
    assert merchant.language == "en"


# Every code an event can store as a parameter value, and every parameter name
# the workflow accepts: none may reach a reader as it is stored.
STORED_CODES = sorted(
    {str(code) for kind in (AppraisalResult, BlockedStage, VerifyOutcome, ScanStatus) for code in kind.values}
    | {param.name for taken in inputs.ACTION_PARAMS.values() for param in taken}
)
RAW_CODE = re.compile(r"(?<![\w-])(?:{})(?![\w-])".format("|".join(map(re.escape, STORED_CODES))))


def test_every_parameter_the_workflow_takes_has_a_label():
    # Actions without their own list take an optional note.
    taken = {param.name for params in inputs.ACTION_PARAMS.values() for param in params}
    taken |= {param.name for param in inputs.NOTE_ONLY}
    assert taken - EVENT_PARAMETERS.keys() == set()


def timeline_orders(merchant_org, provider_org):
    """Orders whose timelines hold, between them, every event that carries parameters."""
    provider = workflow.Actor.of_organisation(provider_org, EventSource.API)
    platform = platform_actor()
    title = {"item_title": "手袋", "buyer_name": "王小明", "buyer_address": "上海市浦东新区"}

    # Shipped and delivered to the provider by scan, verified still in transit,
    # signed in, blocked at packing and unblocked, the deadline extended, then
    # appraised pass, picked up and delivered by scans, and finally scanned
    # under a number that is not its waybill (an offline shipment).
    passed = advance(new_order(merchant_org, provider_org, **title), OrderState.ARRIVED)
    passed = workflow.perform(
        passed, Action.VERIFY_PENDING, provider, outcome=VerifyOutcome.STILL_IN_TRANSIT, note="快递显示在途"
    )
    passed = workflow.perform(passed, Action.SIGN_IN, provider)
    passed = workflow.perform(passed, Action.REPORT_BLOCKED, provider, stage=BlockedStage.PACKING, reason="打包台故障")
    passed = workflow.perform(passed, Action.UNBLOCK, platform, note="已修复")
    passed = workflow.perform(passed, Action.EXTEND_DEADLINE, platform, hours=24, note="买家同意延长")
    passed = advance(passed, OrderState.DELIVERED, result=AppraisalResult.PASS)
    scan("YT1234567890", ScanStatus.PICKED_UP, order_no=passed.order_no, carrier_name="圆通")

    # Signed in by the platform on the provider's behalf, then appraised fail.
    failed = advance(new_order(merchant_org, provider_org, **title), OrderState.ARRIVED)
    failed = workflow.perform(failed, Action.SIGN_IN_ON_BEHALF, platform, note="服务商系统无法签收")
    failed = workflow.perform(failed, Action.APPRAISE, provider, result=AppraisalResult.FAIL)
    # No appraisal needed, then refunded by the platform.
    spared = advance(new_order(merchant_org, provider_org, **title), OrderState.SIGNED_IN)
    spared = workflow.perform(spared, Action.APPRAISE, provider, result=AppraisalResult.NOT_REQUIRED, note="同款已鉴定")
    spared = workflow.perform(spared, Action.REFUND, platform, reason="买家申请退款")
    return passed, failed, spared


def test_the_order_timeline_in_chinese_shows_no_stored_code(client, chinese, merchant_org, provider_org):
    passed, failed, spared = timeline_orders(merchant_org, provider_org)
    shown = {
        passed: [
            "核实结果: 商品在途，尚未送达",
            "备注: 快递显示在途",
            "异常环节: 无法打包",
            "原因: 打包台故障",
            "备注: 已修复",
            "小时数: 24",
            "鉴定结果: 鉴定通过",
            "快递公司: 圆通",
            "物流状态: 已揽收",
        ],
        failed: ["备注: 服务商系统无法签收", "鉴定结果: 鉴定不通过"],
        spared: ["鉴定结果: 无需鉴定", "备注: 同款已鉴定", "原因: 买家申请退款"],
    }
    fragments = english_fragments()
    kinds = set()
    client.force_login(chinese["operator"])
    for order, expected in shown.items():
        kinds |= {e.action for e in order.events.all() if e.payload.get("params")}
        response = client.get(reverse("orders:detail", args=[order.order_no]))
        assert response.status_code == 200
        timeline = visible_text(re.search(r'<ol[^>]*id="timeline".*?</ol>', response.content.decode(), re.S)[0])
        assert RAW_CODE.findall(visible_text(response.content.decode())) == [], (order.order_no, timeline)
        assert ENGLISH_RUN.findall(timeline) == [], timeline
        assert sorted(f for f in fragments if f in timeline) == [], timeline
        for words in expected:
            assert words in timeline, (words, timeline)
    # Between them the orders above hold every action that takes parameters
    # (the others take an optional note, as unblock does above).
    assert kinds >= {a for a, taken in inputs.ACTION_PARAMS.items() if taken} | {Action.UNBLOCK}


def test_an_operator_step_in_the_escalation_thread_reads_in_chinese(client, chinese, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org, item_title="手袋"), OrderState.OUTBOUND)
    escalation = cases.escalate_order(order, workflow.Actor.of_organisation(merchant_org), "包裹卡在中转站")
    client.force_login(chinese["operator"])
    client.post(
        reverse("risks:escalation-act", args=[escalation.pk, "extend-deadline"]),
        {"extend-deadline-hours": "24", "extend-deadline-note": "买家同意延长"},
    )
    thread = client.get(reverse("risks:escalation", args=[escalation.pk])).content.decode()
    thread = visible_text(re.search(r'<ol[^>]*id="thread".*?</ol>', thread, re.S)[0])
    assert "延长收货 — 小时数: 24, 备注: 买家同意延长" in thread, thread
    assert RAW_CODE.findall(thread) == []


def test_the_merchants_split_choice_reads_in_chinese(client, chinese, merchant_org, provider_org):
    for _ in range(2):
        advance(new_order(merchant_org, provider_org, trade_no="T-SPLIT", item_title="手袋"), OrderState.SIGNED_IN)
    from risks.models import RiskCase
    from risks.sweep import run_sweep

    run_sweep()
    case = RiskCase.objects.get(rule="split_order")
    client.force_login(chinese["merchant"])
    client.post(reverse("risks:case-split-choice", args=[case.pk]), {"choice": "B"})
    for persona in ("merchant", "provider"):
        client.force_login(chinese[persona])
        text = visible_text(client.get(reverse("risks:case", args=[case.pk])).content.decode())
        assert "B — 保留订单，选择无需鉴定，面单均需揽收签收，商家承担物流费" in text, text
        assert ENGLISH_RUN.findall(text) == [], text
