from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("", include("stores.urls")),
    path("", include("loyalty.urls")),
    path("settings/integrations/", include("integrations.urls")),
    path("settings/webhooks/", include("loyalty.urls_webhooks")),
    path("audiences/", include("audiences.urls")),
    path("analytics/", include("analytics.urls")),
    path("queue/", include("waitingroom.urls")),
    path("api/pos/v1/", include("loyalty.urls_api")),
    path("api/v1/audiences/", include("audiences.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
]
