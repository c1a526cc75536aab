"""Webhook signing secrets are stored Fernet-encrypted, like integration credentials."""

from django.db import migrations, models

from stores.crypto import decrypt, encrypt


def encrypt_secrets(apps, schema_editor):
    WebhookEndpoint = apps.get_model("loyalty", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.only("pk", "secret_encrypted").iterator():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            secret_encrypted=encrypt(endpoint.secret_encrypted))


def decrypt_secrets(apps, schema_editor):
    WebhookEndpoint = apps.get_model("loyalty", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.only("pk", "secret_encrypted").iterator():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            secret_encrypted=decrypt(endpoint.secret_encrypted))


class Migration(migrations.Migration):

    dependencies = [
        ("loyalty", "0008_webhook_delivery_blocked"),
    ]

    operations = [
        migrations.RenameField(model_name="webhookendpoint", old_name="secret", new_name="secret_encrypted"),
        migrations.AlterField(model_name="webhookendpoint", name="secret_encrypted", field=models.TextField()),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
    ]
