from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty"

    def ready(self):
        from stores.crypto import encrypted_field_register

        from . import signals  # noqa: F401

        encrypted_field_register("loyalty.WebhookEndpoint", "secret_encrypted")
