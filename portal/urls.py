from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal import inbox, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("operator/", views.operator_home, name="operator-home"),
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
    path("api/v1/", include(("orders.api.urls", "api"))),
    path("api/v1/", include(("risks.api.urls", "risks-api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"
