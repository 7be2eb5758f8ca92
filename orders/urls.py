from django.urls import path

from orders.views import detail, lists

app_name = "orders"
urlpatterns = [
    path("orders/", lists.order_list, name="list"),
    path("orders/<str:order_no>/", detail.order_detail, name="detail"),
    path("orders/<str:order_no>/act/<slug:action>/", detail.order_action, name="action"),
    path("worklists/<slug:slug>/", lists.worklist, name="worklist"),
    path("worklists/pending-sign-in/sign-in/", lists.bulk_sign_in, name="bulk-sign-in"),
    path("search/", detail.find, name="search"),
]
