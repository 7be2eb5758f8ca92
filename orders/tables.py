from urllib.parse import urlencode

import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from orders.choices import OPEN_STATES
from orders.models import Order
from portal.formatting import countdown, deadline_class, duration, money
from risks.models import attach_live_cases

SEVERITY_BADGE = {"medium": "text-bg-warning", "high": "text-bg-danger", "critical": "text-bg-dark"}


class OrderTable(tables.Table):
    """Every order list: worklists, my orders, all orders. Row data comes from
    ``Order.objects.for_lists()``; nothing here queries per row."""

    select = tables.CheckBoxColumn(
        accessor="order_no",
        attrs={"th__input": {"data-select-all": "1", "aria-label": _("Select all on this page")}},
        orderable=False,
        exclude_from_export=True,
    )
    order_no = tables.Column(verbose_name=_("Order"))
    auto_confirm_at = tables.Column(verbose_name=_("Deadline"))
    state = tables.Column(verbose_name=_("State"))
    inbound_tracking_no = tables.Column(verbose_name=_("Inbound tracking number"))
    waybill_no = tables.Column(verbose_name=_("Online waybill"))
    trade_no = tables.Column(verbose_name=_("Trade"))
    merchant = tables.Column(accessor="merchant__name", verbose_name=_("Merchant"), order_by="merchant__code")
    provider = tables.Column(accessor="provider__name", verbose_name=_("Provider"), order_by="provider__code")
    item_title = tables.Column(verbose_name=_("Item"), orderable=False)
    age = tables.Column(accessor="state_changed_at", verbose_name=_("In state for"), order_by="state_changed_at")
    amount = tables.Column(verbose_name=_("Amount"))

    class Meta:
        model = Order
        fields = []
        # The deadline comes right after the number, so it is on screen
        # whatever the width; the numbers a person scans come next.
        sequence = [
            "select",
            "order_no",
            "auto_confirm_at",
            "state",
            "inbound_tracking_no",
            "waybill_no",
            "trade_no",
            "merchant",
            "provider",
            "item_title",
            "age",
            "amount",
        ]
        order_by = "auto_confirm_at"
        attrs = {"class": "table table-sm table-hover align-middle", "id": "orders"}
        row_attrs = {"class": lambda record: deadline_class(record.auto_confirm_at, record.state)}
        empty_text = _("No orders here.")

    def before_render(self, request):
        # The page's risk cases, its split groups' included, in one query.
        if self.page is not None:
            attach_live_cases([row.record for row in self.page.object_list])

    def __init__(self, *args, worklist=None, **kwargs):
        # Links from a worklist keep it, so the order page can lead on to
        # the next order of the same list.
        self.worklist = worklist
        super().__init__(*args, **kwargs)

    def render_order_no(self, record, value):
        url = reverse("orders:detail", args=[value])
        if self.worklist:
            url += "?" + urlencode({"worklist": self.worklist})
        badges = []
        if getattr(record, "in_split_group", False):
            badges.append(format_html(' <span class="badge text-bg-info">{}</span>', _("split")))
        if record.flow_blocked:
            badges.append(format_html(' <span class="badge text-bg-danger">{}</span>', _("blocked")))
        for case in getattr(record, "live_cases", ()):
            badges.append(
                format_html(
                    ' <span class="badge {}" title="{}">{}</span>',
                    SEVERITY_BADGE.get(case.severity, "text-bg-secondary"),
                    case.get_severity_display(),
                    case.get_rule_display(),
                )
            )
        link = format_html('<a href="{}">{}</a>', url, value)
        return format_html_join("", "{}", [(link,), *((b,) for b in badges)])

    def render_state(self, record):
        return record.get_state_display()

    def render_age(self, record, value):
        if record.state not in OPEN_STATES:
            # A finished order does not wait any more: say when it finished.
            return _("finished %(when)s") % {"when": timezone.localtime(value).strftime("%Y-%m-%d")}
        return duration(timezone.now() - value)

    def render_amount(self, value):
        return money(value)

    def render_auto_confirm_at(self, record, value):
        return format_html(
            '<time datetime="{}"{} title="{}">{}</time>',
            value.isoformat(),
            mark_safe(" data-countdown") if record.state in OPEN_STATES else "",
            timezone.localtime(value).strftime("%Y-%m-%d %H:%M"),
            countdown(value, record.state),
        )
