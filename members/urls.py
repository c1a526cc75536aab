from django.urls import path  # noqa: F401

app_name = "members"

# Under /c/<company slug>/ (config/urls.py); each view takes `slug` first.
urlpatterns: list = []

# The customer's rewards and wallet (members/views_wallet.py).
from . import views_wallet  # noqa: E402

urlpatterns += [
    path("rewards/", views_wallet.rewards, name="rewards"),
    path("rewards/<int:offer_id>/", views_wallet.reward_confirm, name="reward_confirm"),
    path("wallet/", views_wallet.wallet, name="wallet"),
    path("wallet/<str:code>/qr.svg", views_wallet.wallet_qr, name="wallet_qr"),
]
