from django.urls import path
from rest_framework.routers import SimpleRouter

from risks.api import views

router = SimpleRouter()
router.register("cases", views.CaseViewSet, basename="case")
router.register("escalations", views.EscalationViewSet, basename="escalation")

urlpatterns = [
    path("cases/<int:pk>/acknowledge/", views.CaseAcknowledgeView.as_view(), name="case-acknowledge"),
    path("cases/<int:pk>/resolve/", views.CaseResolveView.as_view(), name="case-resolve"),
    path("cases/<int:pk>/escalate/", views.CaseEscalateView.as_view(), name="case-escalate"),
    path("split-groups/<str:trade_no>/<str:sku>/choose/", views.SplitChoiceView.as_view(), name="split-choose"),
    *router.urls,
]
