from urllib.parse import urlencode

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from orders.choices import OPEN_STATES
from orders.forecast import FORECAST_STATES, Forecaster
from orders.models import Order
from portal.formatting import countdown, deadline_class, duration, forecast_against_deadline, money, why_no_forecast
from portal.tables import Table, UrlPattern
from risks.models import attach_live_cases

SEVERITY_BADGE = {"medium": "text-bg-warning", "high": "text-bg-danger", "critical": "text-bg-dark"}


class OrderTable(Table):
    """Every order list: worklists, my orders, all orders. Row data comes from
    ``Order.objects.for_lists()``; nothing here queries per row."""

    select = tables.CheckBoxColumn(
        accessor="order_no",
        attrs={"th__input": {"data-select-all": "1", "aria-label": _("Select all on this page")}},
        orderable=False,
        exclude_from_export=True,
    )
    order_no = tables.Column(verbose_name=_("Order"))
    # Ties broken by the key, so paging is stable and the first page is read
    # in order from the lists' indexes (``order_provider_open`` and its kin).
    auto_confirm_at = tables.Column(verbose_name=_("Deadline"), order_by=("auto_confirm_at", "id"))
    expected = tables.Column(
        empty_values=(),
        verbose_name=_("Expected delivery"),
        orderable=False,
        exclude_from_export=True,
        attrs={"th": {"class": "head-wrap"}},
    )
    state = tables.Column(verbose_name=_("State"))
    inbound_tracking_no = tables.Column(verbose_name=_("Inbound tracking number"))
    waybill_no = tables.Column(verbose_name=_("Online waybill"))
    trade_no = tables.Column(verbose_name=_("Trade"))
    merchant = tables.Column(accessor="merchant_name", verbose_name=_("Merchant"), order_by="merchant__code")
    provider = tables.Column(accessor="provider_name", verbose_name=_("Provider"), order_by="provider__code")
    item_title = tables.Column(verbose_name=_("Item"), orderable=False, attrs={"td": {"class": "cell-wrap"}})
    age = tables.Column(accessor="state_changed_at", verbose_name=_("In state for"), order_by="state_changed_at")
    amount = tables.Column(verbose_name=_("Amount"))

    class Meta:
        model = Order
        fields = []
        # The deadline comes right after the number, so it is on screen
        # whatever the width, and the expected delivery beside it to be
        # read against it; the numbers a person scans come next.
        sequence = [
            "select",
            "order_no",
            "auto_confirm_at",
            "expected",
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
        records = [row.record for row in self.page.object_list] if self.page is not None else []
        attach_live_cases(records)
        self.forecasts = self._forecasts(records)
        # A column with nothing to say (orders not yet signed for, finished
        # ones, no figures yet) takes no room.
        if not any(self.forecasts.values()) and "expected" in self.columns.names():
            self.columns.hide("expected")

    def __init__(self, *args, worklist=None, forecasts=False, **kwargs):
        # Links from a worklist keep it, so the order page can lead on to
        # the next order of the same list.
        self.worklist = worklist
        self._worklist_query = "?" + urlencode({"worklist": worklist}) if worklist else ""
        self._detail_url = UrlPattern("orders:detail", "order_no")
        # Whether the table shows each order's expected delivery.
        self.show_forecasts = forecasts
        self.forecasts = {}
        super().__init__(*args, **kwargs)

    def _forecasts(self, records):
        """The forecast of each order on the page that can have one, by pk,
        from figures read once for the page. They are read for any page with
        rows, whatever their states, so a list costs the same queries on
        every page."""
        if not self.show_forecasts or not records:
            return {}
        forecaster, now = Forecaster.load(), timezone.now()
        return {record.pk: forecaster.of(record, now) for record in records if record.state in FORECAST_STATES}

    def render_order_no(self, record, value):
        url = self._detail_url(value) + self._worklist_query
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

    def render_expected(self, record):
        forecast = self.forecasts.get(record.pk)
        if forecast is None:
            why = why_no_forecast(record)
            if not why:
                return "—"
            return format_html(
                '<span class="text-body-secondary" title="{}" aria-hidden="true">—</span>'
                '<span class="visually-hidden">{}</span>',
                why,
                why,
            )
        expected = timezone.localtime(forecast.expected_at)
        when = format_html(
            '<time datetime="{}" title="{} · {}">{}</time>',
            forecast.expected_at.isoformat(),
            expected.strftime("%Y-%m-%d %H:%M"),
            forecast_against_deadline(forecast),
            expected.strftime("%m-%d %H:%M"),
        )
        if not forecast.late:
            return when
        # Under the time on a narrow screen, so the column stays narrow.
        return format_html(
            '{}<span class="d-block d-lg-inline ms-lg-1">'
            '<span class="badge text-bg-danger" data-forecast-late>{}</span></span>',
            when,
            _("Forecast to miss"),
        )
