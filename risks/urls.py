from django.urls import path

from risks import views

app_name = "risks"
urlpatterns = [
    path("cases/", views.case_list, name="cases"),
    path("cases/<int:pk>/", views.case_detail, name="case"),
    path("cases/<int:pk>/acknowledge/", views.acknowledge, name="case-acknowledge"),
    path("cases/<int:pk>/resolve/", views.resolve, name="case-resolve"),
    path("cases/<int:pk>/escalate/", views.escalate, name="case-escalate"),
    path("cases/<int:pk>/split-choice/", views.choose_split, name="case-split-choice"),
    path("orders/<str:order_no>/escalate/", views.escalate_order, name="order-escalate"),
    path("escalations/", views.escalation_list, name="escalations"),
    path("escalations/<int:pk>/", views.escalation_detail, name="escalation"),
    path("escalations/<int:pk>/assign/", views.escalation_assign, name="escalation-assign"),
    path("escalations/<int:pk>/comment/", views.escalation_comment, name="escalation-comment"),
    path("escalations/<int:pk>/close/", views.escalation_close, name="escalation-close"),
    path("escalations/<int:pk>/act/<slug:action>/", views.escalation_order_action, name="escalation-act"),
    path("replays/", views.replay_page, name="replays"),
    path("replays/<int:pk>/", views.replay_page, name="replay"),
    path("replays/<int:pk>/rules.csv", views.replay_rules, name="replay-rules"),
]
