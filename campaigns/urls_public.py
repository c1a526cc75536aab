"""Campaign URLs outside the staff pages, at the site's root: Twilio's webhooks (set them on
the Twilio number: see the README), the email unsubscribe page and tracked links."""

from django.urls import path

from . import views_hooks

app_name = "campaigns_public"

urlpatterns = [
    path("hooks/twilio/<slug:slug>/inbound/", views_hooks.twilio_inbound, name="twilio_inbound"),
    path("hooks/twilio/<slug:slug>/status/", views_hooks.twilio_status, name="twilio_status"),
    path("u/<str:token>/", views_hooks.unsubscribe, name="unsubscribe"),
    path("l/<str:code>/", views_hooks.link, name="link_preview"),
    path("l/<str:code>/<str:recipient>/", views_hooks.link, name="link"),
]
