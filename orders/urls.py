from django.urls import path

from orders import views

app_name = "orders"
urlpatterns = [
    path("orders/", views.order_list, name="list"),
    path("orders/<str:order_no>/", views.order_detail, name="detail"),
    path("orders/<str:order_no>/act/<slug:action>/", views.order_action, name="action"),
    path("worklists/<slug:slug>/", views.worklist, name="worklist"),
    path("worklists/pending-sign-in/sign-in/", views.bulk_sign_in, name="bulk-sign-in"),
    path("search/", views.find, name="search"),
]
