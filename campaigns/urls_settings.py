from django.urls import path

from . import views

urlpatterns = [path("", views.messaging_settings_view, name="messaging_settings")]
