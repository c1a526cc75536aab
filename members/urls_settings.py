from django.urls import path

from . import views_settings

# Under settings/loyalty-page/ (config/urls.py): staff pages, not the customer's.
urlpatterns = [
    path("", views_settings.loyalty_page_settings_view, name="loyalty_page_settings"),
    path("test-message/", views_settings.loyalty_page_test_message_view, name="loyalty_page_test_message"),
]
