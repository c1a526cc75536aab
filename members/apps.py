from django.apps import AppConfig


class MembersConfig(AppConfig):
    """The customer's own loyalty page, per company at /c/<company slug>/: sign in by phone,
    join, points, rewards and wallet, preferences and privacy."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "members"
