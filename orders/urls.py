from django.urls import path

from orders.views import detail, labels, lists, station

app_name = "orders"
urlpatterns = [
    path("orders/", lists.order_list, name="list"),
    path("orders/<str:order_no>/", detail.order_detail, name="detail"),
    path("orders/<str:order_no>/act/<slug:action>/", detail.order_action, name="action"),
    path("worklists/<slug:slug>/", lists.worklist, name="worklist"),
    path("worklists/<slug:slug>/bulk/", lists.bulk_action, name="bulk"),
    path("worklists/<slug:slug>/scan/", station.scan_station, name="station"),
    path("search/", detail.find, name="search"),
    path("labels/", labels.waybill_labels, name="labels"),
]
