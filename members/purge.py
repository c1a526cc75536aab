"""Sign-in records past any use, removed nightly (members.tasks.sign_in_records_purge)."""

from datetime import timedelta

from django.utils import timezone

from .models import CustomerSession, LoginCode

# Kept a while after they stop working: enough to answer "why could I not sign in yesterday".
CODES_KEPT = timedelta(days=1)
SESSIONS_KEPT = timedelta(days=30)


def sign_in_records_purge(*, now=None) -> dict[str, int]:
    """Delete codes expired a day ago and sessions expired or revoked 30 days ago; returns
    how many of each."""
    now = now or timezone.now()
    codes, _ = LoginCode.objects.filter(expires_at__lt=now - CODES_KEPT).delete()
    old = now - SESSIONS_KEPT
    sessions, _ = CustomerSession.objects.filter(expires_at__lt=old).delete()
    revoked, _ = CustomerSession.objects.filter(revoked_at__lt=old).delete()
    return {"codes": codes, "sessions": sessions + revoked}
