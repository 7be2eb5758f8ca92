from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from portal.models import Organisation, User


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
