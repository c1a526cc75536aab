from django.apps import AppConfig


class MembersConfig(AppConfig):
    """The customer's own loyalty page, per company at /c/<company slug>/: sign in by phone,
    join, points, rewards and wallet, preferences and privacy."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "members"

    def ready(self):
        from stores.crypto import encrypted_field_register

        encrypted_field_register("members.LoyaltyPageSettings", "twilio_auth_token_encrypted")

        from loyalty.card import persona_card_facts_register

        from .selectors import last_signed_in_fact

        persona_card_facts_register(last_signed_in_fact)

        from waitingroom.kiosk_offers import kiosk_offer_register

        from . import receivers  # noqa: F401
        from .views_link import kiosk_link_offer

        kiosk_offer_register(kiosk_link_offer)
