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
    path("escalations/<int:pk>/assign/", views.EscalationAssignView.as_view(), name="escalation-assign"),
    path("escalations/<int:pk>/comment/", views.EscalationCommentView.as_view(), name="escalation-comment"),
    path("escalations/<int:pk>/resolve/", views.EscalationResolveView.as_view(), name="escalation-resolve"),
    path("escalations/<int:pk>/reject/", views.EscalationRejectView.as_view(), name="escalation-reject"),
    path("split-groups/<str:trade_no>/<str:sku>/choose/", views.SplitChoiceView.as_view(), name="split-choose"),
    *router.urls,
]
