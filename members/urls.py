from django.urls import path

from . import views

app_name = "members"

# Under /c/<company slug>/ (config/urls.py); each view takes `slug` first.
urlpatterns: list = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/code/", views.code, name="code"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("join/", views.join, name="join"),
    path("points/", views.points, name="points"),
    path("logo", views.page_logo, name="logo"),
    path("branding.css", views.page_branding_css, name="branding_css"),
]
