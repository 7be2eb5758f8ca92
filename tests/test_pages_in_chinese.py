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

from orders import worklists
from orders.choices import OrderState
from tests.factories import advance, new_order

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
