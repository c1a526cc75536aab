from django.urls import path

from . import views

urlpatterns = [
    path("", views.queue_home, name="queue_home"),
    path("<int:store_id>/", views.queue_store, name="queue_store"),
    path("<int:store_id>/entries/<int:entry_id>/profile/", views.queue_profile, name="queue_profile"),
    path("<int:store_id>/entries/<int:entry_id>/<str:action>/", views.queue_entry_action,
         name="queue_entry_action"),
    path("check-in/<str:token>/", views.queue_check_in, name="queue_check_in"),
    path("check-in/<str:token>/logo", views.kiosk_logo, name="kiosk_logo"),
    path("check-in/<str:token>/branding.css", views.kiosk_branding_css, name="kiosk_branding_css"),
    path("stores/<int:store_id>/check-in-link/", views.checkin_link_regenerate,
         name="checkin_link_regenerate"),
]
