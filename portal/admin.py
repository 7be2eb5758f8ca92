import secrets

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from portal import apikeys, delivery, notify
from portal.models import ApiKey, CarrierIntegration, Notification, Organisation, User


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "appraisal_fee", "logistics_fee", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["code", "name"]


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    list_display = ["username", "email", "organisation", "language", "is_active", "is_staff"]
    list_filter = ["organisation__kind", "is_active", "is_staff", "is_superuser"]
    list_select_related = ["organisation"]
    search_fields = ["username", "email", "first_name", "last_name", "organisation__code"]
    fieldsets = (*UserAdmin.fieldsets, (_("Portal"), {"fields": ("organisation", "language")}))
    add_fieldsets = (*UserAdmin.add_fieldsets, (_("Portal"), {"fields": ("organisation", "language")}))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Administrators make keys for any organisation; the key is shown once, in the message after saving."""

    list_display = ["name", "organisation", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organisation__kind", "revoked_at"]
    search_fields = ["name", "prefix", "organisation__code"]
    list_select_related = ["organisation"]
    fields = ["organisation", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at"]
    actions = ["revoke_keys"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = apikeys.issue(obj.organisation, obj.name, created_by=request.user)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        obj._state.adding = False
        messages.warning(request, _("Copy this key now, it will not be shown again: %(key)s") % {"key": raw})

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Revoke the selected keys"))
    def revoke_keys(self, request, queryset):
        for key in queryset:
            apikeys.revoke(key)


@admin.register(CarrierIntegration)
class CarrierIntegrationAdmin(admin.ModelAdmin):
    """The signing secret is made here and shown once, in the message after
    saving; it is sealed in the database and never displayed again."""

    list_display = ["name", "carrier_codes", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "carrier_codes"]
    fields = ["name", "carrier_codes", "is_active", "created_at"]
    readonly_fields = ["created_at"]
    actions = ["issue_new_secrets"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.secret = secrets.token_urlsafe(32)
        super().save_model(request, obj, form, change)
        self._show_once(request, obj)

    @admin.action(description=_("Issue new signing secrets (the old ones stop working at once)"))
    def issue_new_secrets(self, request, queryset):
        for integration in queryset:
            integration.secret = secrets.token_urlsafe(32)
            integration.save(update_fields=["secret"])
            self._show_once(request, integration)

    @staticmethod
    def _show_once(request, integration):
        messages.warning(
            request,
            _("Copy the signing secret of %(name)s now, it will not be shown again: %(secret)s")
            % {"name": integration.name, "secret": integration.secret},
        )


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The outbox: administrators see what failed, why, and can send it again."""

    list_display = [
        "created_at",
        "kind",
        "recipient",
        "email_status",
        "attempts",
        "failing_since",
        "last_error",
        "sent_at",
        "read_at",
    ]
    list_filter = ["email_status", "kind"]
    search_fields = ["recipient__username", "recipient__email", "key"]
    list_select_related = ["recipient"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Send the selected failed emails again"))
    def send_again(self, request, queryset):
        # A fresh retry window: the email is tried again for NOTIFY_RETRY_WINDOW_HOURS.
        again = delivery.send_again(queryset)
        notify.kick()
        messages.success(request, _("%(n)d emails will be sent again.") % {"n": again})
