from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal import access, health, inbox, views

# The hash of the <style> block in drf-spectacular's swagger_ui.html; an
# upgrade that changes it shows as a violation in tests/integration/test_csp_browser.py.
SWAGGER_STYLE_HASH = "'sha256-MMpT0iDxyjALd9PdfepImGX3DBfJPXZ4IlDWdPAgtn0='"

urlpatterns = [
    # The API first: integrations send the most requests, and every pattern
    # tried before theirs (the pages' are many) is a match attempted.
    path("api/v1/", include(("orders.api.urls", "api"))),
    path("api/v1/", include(("risks.api.urls", "risks-api"))),
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=access.LoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    # Django's password views under the names its own views link to.
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path(
        "password/reset/",
        auth_views.PasswordResetView.as_view(
            form_class=access.PasswordResetForm,
            email_template_name="registration/password_reset_email.txt",
            subject_template_name="registration/password_reset_subject.txt",
            extra_email_context={"site_url": settings.SITE_URL},
        ),
        name="password_reset",
    ),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("operator/", views.operator_home, name="operator-home"),
    path("dashboard/", views.dashboard_page, name="dashboard"),
    path("dashboard/<slug:chart>.csv", views.dashboard_csv, name="dashboard-csv"),
    path("profile/language/", views.set_language, name="set-language"),
    path("settings/api-keys/", views.api_keys, name="api-keys"),
    path("settings/notifications/", inbox.preferences, name="notification-preferences"),
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/count/", inbox.inbox_count, name="inbox-count"),
    path("inbox/read-all/", inbox.mark_all_read, name="inbox-read-all"),
    path("inbox/<int:pk>/read/", inbox.mark_read, name="inbox-read"),
    path("settings/api-keys/<str:prefix>/revoke/", views.revoke_api_key, name="api-key-revoke"),
    path("", include("orders.urls")),
    path("", include("risks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view loads its script from a URL (no inline script); the one
    # inline <style> of drf-spectacular's page is allowed by its hash only.
    path(
        "api/docs/",
        csp_update({"style-src": [SWAGGER_STYLE_HASH]})(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
    # For load balancers and monitors: no login, 200 when healthy, 503 when not.
    path("health/", health.HealthView.as_view(), name="health"),
]

handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"
