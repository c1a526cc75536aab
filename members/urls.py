from django.urls import path  # noqa: F401

app_name = "members"

# Under /c/<company slug>/ (config/urls.py); each view takes `slug` first.
urlpatterns: list = []
