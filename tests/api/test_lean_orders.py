"""The orders' answer built in one pass equals what the declared fields render
one by one, for every kind of reader and every kind of order."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from orders.api.serializers import OrderDetailSerializer, OrderSerializer
from orders.choices import OrderState
from orders.models import Order
from tests.factories import advance, new_order

S = OrderState


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
@pytest.mark.parametrize("persona", ["merchant", "provider", "operator"])
def test_the_one_pass_answer_is_the_fields_answer(personas, merchant_org, provider_org, persona, zone):
    buyer = {"buyer_name": "王小明", "buyer_phone": "13800138000", "buyer_address": "上海市浦东新区世纪大道 100 号"}
    grouped = advance(new_order(merchant_org, provider_org, trade_no="T-LEAN", **buyer), S.DELIVERED)
    new_order(merchant_org, provider_org, trade_no="T-LEAN")
    advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=3), **buyer), S.APPRAISED)
    request = Request(APIRequestFactory().get("/"))
    request.user = personas[persona]
    context = {"request": request}
    for queryset in (Order.objects.for_lists(), Order.objects.select_related("merchant", "provider")):
        for order in queryset:
            for kind in (OrderSerializer, OrderDetailSerializer):
                with timezone.override(zone):
                    lean = kind(order, context=context).data
                    generic = serializers.ModelSerializer.to_representation(kind(order, context=context), order)
                assert dict(lean) == dict(generic), order.order_no
                assert list(lean) == list(generic)
                assert lean["paid_at"].endswith("Z" if zone == "UTC" else "+08:00"), lean["paid_at"]
    shown = OrderSerializer(Order.objects.get(pk=grouped.pk), context=context).data
    assert shown["picked_up_at"] and shown["buyer_phone"] != (buyer["buyer_phone"] if persona == "provider" else "")


def test_a_time_format_set_for_the_api_is_followed(settings, personas, merchant_org, provider_org):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DATETIME_FORMAT": "%Y-%m-%d %H:%M"}
    new_order(merchant_org, provider_org)
    request = Request(APIRequestFactory().get("/"))
    request.user = personas["merchant"]
    order = Order.objects.for_lists().get()
    lean = OrderSerializer(order, context={"request": request}).data
    generic = serializers.ModelSerializer.to_representation(OrderSerializer(order, context={"request": request}), order)
    assert dict(lean) == dict(generic)
    assert "T" not in lean["paid_at"] and len(lean["paid_at"]) == len("2026-11-30 08:00")
