from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from stores.crypto import encrypted_field_register
        from stores.extensions import store_mappings_register

        from . import receivers, views_cova  # noqa: F401

        # The store edit page's Store mappings section is ours.
        store_mappings_register(views_cova.StoreMappingsSection())

        encrypted_field_register("integrations.Connection", "credentials_encrypted")
        encrypted_field_register("integrations.CovaCredential", "secrets_encrypted")
