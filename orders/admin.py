from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from orders.models import CarrierScan, FeeCharge, Order, OrderEvent, SplitGroup


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the workflow writes: administrators read them, never edit them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    fields = ["seq", "action", "from_state", "to_state", "source", "actor_user", "occurred_at", "payload"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["order_no", "trade_no", "sku", "merchant", "provider", "state", "flow_blocked", "auto_confirm_at"]
    list_filter = ["state", "flow_blocked", "appraisal_result", "provider", "merchant"]
    search_fields = ["order_no", "trade_no", "inbound_tracking_no", "waybill_no"]
    list_select_related = ["merchant", "provider"]
    date_hierarchy = "auto_confirm_at"
    inlines = [OrderEventInline]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Order._meta.fields]


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = ["order", "seq", "action", "from_state", "to_state", "source", "actor_user", "occurred_at"]
    list_filter = ["action", "source"]
    search_fields = ["order__order_no"]
    list_select_related = ["order", "actor_user"]
    show_full_result_count = False


@admin.register(FeeCharge)
class FeeChargeAdmin(ReadOnlyAdmin):
    list_display = ["order", "kind", "amount", "waybill_no", "charged_at"]
    list_filter = ["kind"]
    search_fields = ["order__order_no", "waybill_no"]
    list_select_related = ["order"]


@admin.register(CarrierScan)
class CarrierScanAdmin(ReadOnlyAdmin):
    list_display = ["carrier", "tracking_no", "status", "occurred_at", "order_no", "order", "outcome", "received_at"]
    list_filter = ["outcome", "status", "carrier"]
    search_fields = ["tracking_no", "order_no"]
    list_select_related = ["order"]


@admin.register(SplitGroup)
class SplitGroupAdmin(ReadOnlyAdmin):
    list_display = ["trade_no", "sku", "choice", "chosen_by", "chosen_at"]
    list_filter = ["choice"]
    search_fields = ["trade_no", "sku"]


admin.site.site_header = _("Appraisal Portal administration")
admin.site.site_title = _("Appraisal Portal")
