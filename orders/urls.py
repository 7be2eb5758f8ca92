from django.urls import path

from orders.views import detail, imports, labels, lists, station

app_name = "orders"
urlpatterns = [
    path("orders/", lists.order_list, name="list"),
    path("imports/", imports.import_orders, name="import"),
    path("imports/<int:pk>/", imports.import_job, name="import-job"),
    path("imports/<int:pk>/refused/", imports.refused_rows, name="import-refused"),
    path("imports/sample.<slug:file_format>", imports.sample, name="import-sample"),
    path("orders/<str:order_no>/", detail.order_detail, name="detail"),
    path("orders/<str:order_no>/act/<slug:action>/", detail.order_action, name="action"),
    path("worklists/<slug:slug>/", lists.worklist, name="worklist"),
    path("worklists/<slug:slug>/bulk/", lists.bulk_action, name="bulk"),
    path("worklists/<slug:slug>/scan/", station.scan_station, name="station"),
    path("search/", detail.find, name="search"),
    path("labels/", labels.waybill_labels, name="labels"),
]
