from django.urls import path

from . import views_report

urlpatterns = [
    path("<int:campaign_id>/report/", views_report.campaign_report_partial, name="campaign_report_partial"),
    path("<int:campaign_id>/outcomes.csv", views_report.campaign_outcomes_csv, name="campaign_outcomes_csv"),
]
