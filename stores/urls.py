from django.urls import path

from analytics.views import home

from . import views, views_activity

urlpatterns = [
    path("", home, name="home"),  # the dashboard
    path("company/switch/", views.company_switch, name="company_switch"),
    path("settings/stores/", views.store_list, name="store_list"),
    path("settings/stores/new/", views.store_create_view, name="store_create"),
    path("settings/stores/<int:store_id>/edit/", views.store_edit, name="store_edit"),
    path("settings/api-keys/", views.api_key_list, name="api_key_list"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("settings/activity/", views_activity.activity, name="audit_activity"),
    path("settings/activity/export.csv", views_activity.activity_export, name="audit_activity_export"),
]
