from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from analytics.views import home
from loyalty.views_api_docs import api_guide_view, api_postman_view
from ops.views import healthz, readyz
from stores.metrics import metrics_view


def favicon(request):
    # Looked up per request, not when the URLs load: in production the hashed name comes
    # from collectstatic's manifest, which `manage.py check` or `migrate` need not have.
    return redirect(static("favicon.svg"))


handler404 = "stores.api.not_found"  # JSON under /api/, the site's page elsewhere

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; needs METRICS_TOKEN
    # Browsers ask for it on pages that name no icon (the Django admin's).
    path("favicon.ico", favicon),
    path("", home, name="home"),  # the dashboard, for the signed-in role
    path("", include("stores.urls")),
    path("", include("loyalty.urls")),
    path("settings/integrations/", include("integrations.urls")),
    path("settings/webhooks/", include("loyalty.urls_webhooks")),
    path("settings/loyalty-page/", include("members.urls_settings")),
    path("audiences/", include("audiences.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("campaigns/", include("campaigns.urls_report")),
    path("settings/messaging/", include("campaigns.urls_settings")),
    path("analytics/", include("analytics.urls")),
    path("queue/", include("waitingroom.urls")),
    path("", include("campaigns.urls_public")),  # Twilio's webhooks, /u/ unsubscribe, /l/ links
    path("c/<slug:slug>/", include("members.urls")),
    path("api/pos/v1/", include("loyalty.urls_api")),
    path("api/v1/audiences/", include("audiences.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(
        url_name="api_schema", template_name="api_docs.html"), name="api_docs"),
    path("api/docs/guide/", api_guide_view, name="api_guide"),
    path("api/docs/postman.json", api_postman_view, name="api_postman"),
]
