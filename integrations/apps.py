from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from stores.crypto import encrypted_field_register

        from . import receivers  # noqa: F401

        encrypted_field_register("integrations.Connection", "credentials_encrypted")
        encrypted_field_register("integrations.CovaCredential", "secrets_encrypted")
