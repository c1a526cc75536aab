from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from stores.crypto import encrypted_field_register
        from stores.extensions import store_mappings_register
        from stores.metrics import scrape_collector_register

        from . import receivers, views_cova  # noqa: F401
        from .metrics import sync_ages

        # The store edit page's Store mappings section is ours.
        store_mappings_register(views_cova.StoreMappingsSection())

        scrape_collector_register(sync_ages)  # /metrics: age of each connection's last sync
        encrypted_field_register("integrations.Connection", "credentials_encrypted")
        encrypted_field_register("integrations.CovaCredential", "secrets_encrypted")
