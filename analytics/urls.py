from django.urls import path

from . import views

urlpatterns = [
    path("", views.analytics_page, name="analytics"),
    path("export/<slug:chart_key>.csv", views.analytics_csv, name="analytics_csv"),
]
