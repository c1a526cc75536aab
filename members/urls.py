from django.urls import path

from . import views, views_link, views_privacy, views_wallet

app_name = "members"

# Under /c/<company slug>/ (config/urls.py); each view takes `slug` first.
urlpatterns: list = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/code/", views.code, name="code"),
    path("sign-in/link/<str:token>/", views_link.sign_in_link, name="sign_in_link"),
    path("sign-in/from-kiosk/", views_link.kiosk_link, name="kiosk_link"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("join/", views.join, name="join"),
    path("points/", views.points, name="points"),
    path("logo", views.page_logo, name="logo"),
    path("branding.css", views.page_branding_css, name="branding_css"),
    # The customer's rewards and wallet (members/views_wallet.py).
    path("rewards/", views_wallet.rewards, name="rewards"),
    path("rewards/<int:offer_id>/", views_wallet.reward_confirm, name="reward_confirm"),
    path("wallet/", views_wallet.wallet, name="wallet"),
    path("wallet/<str:code>/qr.svg", views_wallet.wallet_qr, name="wallet_qr"),
    # Preferences and privacy (members/views_privacy.py).
    path("preferences/", views_privacy.preferences, name="preferences"),
    path("preferences/stop/<str:channel>/", views_privacy.preferences_stop, name="preferences_stop"),
    path("preferences/my-data/", views_privacy.data_download, name="data_download"),
    path("preferences/delete/", views_privacy.account_delete_view, name="account_delete"),
]
