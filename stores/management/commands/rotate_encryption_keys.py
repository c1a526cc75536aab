"""Re-encrypt every secret at rest with the newest of FIELD_ENCRYPTION_KEYS.

Put the new key first in FIELD_ENCRYPTION_KEYS (keeping the old ones after it), deploy,
run this, then drop the old keys. It works in committed batches, so it can be stopped and
run again: rows already under the newest key are skipped.
"""

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from stores.crypto import ENCRYPTED_FIELDS
from stores.services import encrypted_field_rotate


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest key in FIELD_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500,
                            help="Rows re-encrypted and committed together (default 500).")

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        keys = len(settings.FIELD_ENCRYPTION_KEYS)
        self.stdout.write(f"Re-encrypting with the newest of {keys} key{'s' if keys != 1 else ''}.")
        unreadable = []
        for model_label, field_name in ENCRYPTED_FIELDS:
            count = encrypted_field_rotate(model=apps.get_model(model_label), field_name=field_name,
                                           batch_size=batch_size)
            line = f"{count.table}: {count.reencrypted} re-encrypted, {count.current} already current"
            if count.unreadable:
                line += f", {len(count.unreadable)} unreadable"
                ids = ", ".join(map(str, count.unreadable))
                unreadable.append(f"{count.table}.{field_name} (id {ids})")
            self.stdout.write(line)
        if unreadable:
            raise CommandError(
                "No key in FIELD_ENCRYPTION_KEYS decrypts these secrets: " + "; ".join(unreadable)
                + ". Add the key they were saved under to FIELD_ENCRYPTION_KEYS and run this again, "
                "or enter those secrets again. Everything else is re-encrypted."
            )
