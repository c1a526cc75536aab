from django.urls import path

from . import views

urlpatterns = [
    path("", views.campaign_list, name="campaign_list"),
    path("new/", views.campaign_new, name="campaign_new"),
    path("<int:campaign_id>/", views.campaign_detail, name="campaign_detail"),
    path("<int:campaign_id>/edit/", views.campaign_edit, name="campaign_edit"),
    path("<int:campaign_id>/email-preview/", views.campaign_email_preview, name="campaign_email_preview"),
    path("<int:campaign_id>/progress/", views.campaign_progress, name="campaign_progress"),
    path("<int:campaign_id>/send/", views.campaign_send_view, name="campaign_send"),
    path("<int:campaign_id>/pause/", views.campaign_pause_view, name="campaign_pause"),
    path("<int:campaign_id>/resume/", views.campaign_resume_view, name="campaign_resume"),
    path("<int:campaign_id>/cancel/", views.campaign_cancel_view, name="campaign_cancel"),
    path("<int:campaign_id>/delete/", views.campaign_delete_view, name="campaign_delete"),
    path("<int:campaign_id>/test/", views.campaign_test_view, name="campaign_test"),
]
