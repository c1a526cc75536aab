from django.urls import path

from . import api

urlpatterns = [
    path("ping", api.PingView.as_view(), name="pos_ping"),
    path("lookup", api.LookupView.as_view(), name="pos_lookup"),
    path("offers/purchase", api.OfferPurchaseView.as_view(), name="pos_offer_purchase"),
    path("redeem", api.RedeemView.as_view(), name="pos_redeem"),
    path("reinstate", api.ReinstateView.as_view(), name="pos_reinstate"),
    path("lock", api.LockView.as_view(), name="pos_lock"),
    path("unlock", api.UnlockView.as_view(), name="pos_unlock"),
    path("send_transaction", api.SendTransactionView.as_view(), name="pos_send_transaction"),
    path("personas/<int:persona_id>/balance", api.PersonaBalanceView.as_view(), name="pos_balance"),
    path("personas/<int:persona_id>/ledger", api.PersonaLedgerView.as_view(), name="pos_ledger"),
]
