from django.urls import path

from . import api

urlpatterns = [
    path("", api.AudienceListView.as_view(), name="api_audiences"),
    path("count", api.AudienceCountView.as_view(), name="api_audience_count"),
    path("<int:audience_id>", api.AudienceDetailView.as_view(), name="api_audience"),
    path("<int:audience_id>/members", api.AudienceMembersView.as_view(), name="api_audience_members"),
    path("<int:audience_id>/refresh", api.AudienceRefreshView.as_view(), name="api_audience_refresh"),
]
