"""The project's URLs with the campaign report's (tests mark themselves with this urlconf)."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("campaigns/", include("campaigns.urls_report"))]
