from django.contrib import admin

from risks.models import CaseEvent, Escalation, RiskCase, RiskSettings


@admin.register(RiskSettings)
class RiskSettingsAdmin(admin.ModelAdmin):
    """The thresholds of the risk rules; changes apply from the next sweep, no deploy needed."""

    def has_add_permission(self, request):
        return not RiskSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


class CaseEventInline(admin.TabularInline):
    model = CaseEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "actor_user", "actor_organisation", "note", "at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RiskCase)
class RiskCaseAdmin(admin.ModelAdmin):
    list_display = ["id", "rule", "order", "owner", "severity", "status", "due_at", "money_at_risk"]
    list_filter = ["rule", "status", "severity"]
    search_fields = ["order__order_no", "trade_no", "subject"]
    list_select_related = ["order", "owner"]
    readonly_fields = [f.name for f in RiskCase._meta.fields]
    inlines = [CaseEventInline]

    def has_add_permission(self, request):
        return False


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin):
    list_display = ["id", "category", "order", "raised_by_organisation", "status", "assignee", "first_response_due_at"]
    list_filter = ["status", "category", "raised_by_rule"]
    search_fields = ["order__order_no", "reason"]
    list_select_related = ["order", "raised_by_organisation", "assignee"]
    readonly_fields = ["order", "case", "raised_by_user", "raised_by_organisation", "raised_by_rule", "created_at"]
