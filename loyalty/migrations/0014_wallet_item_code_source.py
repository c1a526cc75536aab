import secrets

from django.db import migrations, models

import loyalty.models

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def backfill(apps, schema_editor):
    """A code for every wallet item already held (unique per company), and where it came
    from: staff grants carry their staff member, the rest were bought at the POS."""
    WalletItem = apps.get_model("loyalty", "WalletItem")
    taken: dict[int, set[str]] = {}
    batch = []
    for item in WalletItem.objects.only("pk", "company_id", "granted_by_id").order_by("pk").iterator():
        codes = taken.setdefault(item.company_id, set())
        code = "".join(secrets.choice(ALPHABET) for _ in range(8))
        while code in codes:
            code = "".join(secrets.choice(ALPHABET) for _ in range(8))
        codes.add(code)
        item.code = code
        item.source = "staff" if item.granted_by_id else "pos"
        batch.append(item)
        if len(batch) >= 1000:
            WalletItem.objects.bulk_update(batch, ["code", "source"])
            batch = []
    if batch:
        WalletItem.objects.bulk_update(batch, ["code", "source"])


class Migration(migrations.Migration):

    dependencies = [
        ("loyalty", "0013_persona_bulk_job"),
    ]

    operations = [
        migrations.AddField(
            model_name="walletitem",
            name="code",
            field=models.CharField(max_length=8, null=True, editable=False),
        ),
        migrations.AddField(
            model_name="walletitem",
            name="source",
            field=models.CharField(choices=[("pos", "Bought at the POS"), ("staff", "Granted by staff"),
                                            ("loyalty_page", "Bought on the loyalty page")],
                                   default="pos", max_length=16),
        ),
        migrations.AddField(
            model_name="walletitem",
            name="purchase_token",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="walletitem",
            name="code",
            field=models.CharField(default=loyalty.models.wallet_code_new, editable=False, max_length=8),
        ),
        migrations.AddConstraint(
            model_name="walletitem",
            constraint=models.CheckConstraint(condition=models.Q(("source__in", ["pos", "staff", "loyalty_page"])),
                                              name="wallet_item_source_valid"),
        ),
        migrations.AddConstraint(
            model_name="walletitem",
            constraint=models.UniqueConstraint(fields=("company", "code"), name="wallet_item_code_unique"),
        ),
        migrations.AddConstraint(
            model_name="walletitem",
            constraint=models.UniqueConstraint(condition=models.Q(("purchase_token__isnull", False)),
                                               fields=("persona", "purchase_token"),
                                               name="wallet_item_purchase_token_unique"),
        ),
    ]
