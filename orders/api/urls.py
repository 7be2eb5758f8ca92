from django.urls import path
from rest_framework.routers import SimpleRouter

from orders.api import views

router = SimpleRouter()
router.register("orders", views.OrderViewSet, basename="order")

urlpatterns = [
    *[
        path(f"orders/<str:order_no>/{slug}/", view.as_view(), name=f"order-{slug}")
        for slug, view in views.ACTION_VIEWS.items()
    ],
    path("worklists/<str:name>/", views.WorklistView.as_view(), name="worklist"),
    path("carrier-events/", views.CarrierEventsView.as_view(), name="carrier-events"),
    *router.urls,
]
