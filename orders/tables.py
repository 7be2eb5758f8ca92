import django_tables2 as tables
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from orders.models import Order
from portal.templatetags.portal import money


class OrderTable(tables.Table):
    order_no = tables.Column(linkify=("orders:detail", {"order_no": tables.A("order_no")}))
    merchant = tables.Column(accessor="merchant__code", verbose_name=_("merchant"))
    provider = tables.Column(accessor="provider__code", verbose_name=_("provider"))
    amount = tables.Column()
    auto_confirm_at = tables.DateTimeColumn(format="SHORT_DATETIME_FORMAT")

    class Meta:
        model = Order
        fields = [
            "order_no",
            "trade_no",
            "sku",
            "item_title",
            "merchant",
            "provider",
            "state",
            "amount",
            "auto_confirm_at",
        ]
        order_by = "auto_confirm_at"
        attrs = {"class": "table"}

    def render_amount(self, value):
        return money(value)

    def render_state(self, record, value):
        if record.flow_blocked:
            return format_html('{} <span class="badge badge-danger">{}</span>', value, _("blocked"))
        return value
