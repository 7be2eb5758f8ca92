from django.urls import path
from rest_framework.routers import SimpleRouter

from orders.api import views

# The orders, and each workflow step as an action of one order
# (``orders/<order_no>/sign-in/`` and the like, ``OrderViewSet``).
router = SimpleRouter()
router.register("orders", views.OrderViewSet, basename="order")

urlpatterns = [
    path("worklists/<str:name>/", views.WorklistView.as_view(), name="worklist"),
    path("carrier-events/", views.CarrierEventsView.as_view(), name="carrier-events"),
    *router.urls,
]
