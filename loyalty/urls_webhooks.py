from django.urls import path

from . import views_webhooks as views

# Included under settings/webhooks/.
urlpatterns = [
    path("", views.webhook_list, name="webhook_list"),
    path("new/", views.webhook_create, name="webhook_create"),
    path("<int:endpoint_id>/", views.webhook_detail, name="webhook_detail"),
    path("<int:endpoint_id>/edit/", views.webhook_edit, name="webhook_edit"),
    path("<int:endpoint_id>/delete/", views.webhook_delete, name="webhook_delete"),
    path("<int:endpoint_id>/secret/rotate/", views.webhook_rotate_secret, name="webhook_rotate_secret"),
    path("deliveries/<int:delivery_id>/", views.webhook_delivery_detail, name="webhook_delivery_detail"),
    path("deliveries/<int:delivery_id>/resend/", views.webhook_delivery_resend,
         name="webhook_delivery_resend"),
]
