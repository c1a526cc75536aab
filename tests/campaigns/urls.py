"""The project's URLs with the campaign report's, and a page that shows the report as the
campaign page does (tests mark themselves with this urlconf)."""

from django.http import HttpResponse
from django.template import engines
from django.urls import include, path

from campaigns.views_report import _campaign, report_context
from config.urls import urlpatterns as project_urlpatterns
from stores.tenancy import company_view

PAGE = engines["django"].from_string(
    '{% extends "base.html" %}{% block content %}<h1>{{ campaign.name }}</h1>'
    '{% include "campaigns/_report.html" %}{% endblock %}')


@company_view("campaigns.view")
def campaign_page(request, campaign_id):
    campaign = _campaign(request, campaign_id)
    return HttpResponse(PAGE.render(report_context(campaign, request.GET.get("days")), request))


urlpatterns = [
    *project_urlpatterns,
    path("campaigns/", include("campaigns.urls_report")),
    path("test-campaigns/<int:campaign_id>/", campaign_page, name="test_campaign_page"),
]
