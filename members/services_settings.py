"""The writes of Settings › Loyalty page (admins), each audited."""

from django.db import transaction

from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.crypto import encrypt

from .models import LoyaltyPageSettings, SentMessage
from .sms import SmsNotSent, sms_send

AUDIT_FIELDS = ("enabled", "minimum_age", "minimum_ages", "sms_provider", "twilio_account_sid",
                "twilio_sender")


def _snapshot(page: LoyaltyPageSettings) -> dict:
    # The token as its encrypted form: the trail says only that it changed.
    return audit_snapshot(page, AUDIT_FIELDS) | {"twilio_auth_token": page.twilio_auth_token_encrypted}


@transaction.atomic
def loyalty_page_settings_update(*, company, audit: AuditContext | None, enabled: bool, minimum_age: int,
                                 minimum_ages: dict, sms_provider: str, twilio_account_sid: str = "",
                                 twilio_sender: str = "", twilio_auth_token: str | None = None
                                 ) -> LoyaltyPageSettings:
    """Save the company's loyalty page settings. `twilio_auth_token` None keeps the stored
    token; a value replaces it (stored encrypted, only its last 4 characters kept plain)."""
    page, _ = LoyaltyPageSettings.objects.get_or_create(company=company)
    page = LoyaltyPageSettings.objects.select_for_update(of=("self",)).get(pk=page.pk)
    before = _snapshot(page)
    page.enabled, page.minimum_age = enabled, minimum_age
    page.minimum_ages = {str(market).upper(): int(age) for market, age in sorted(minimum_ages.items())}
    page.sms_provider = sms_provider
    page.twilio_account_sid, page.twilio_sender = twilio_account_sid, twilio_sender
    if twilio_auth_token:
        page.twilio_auth_token_encrypted = encrypt(twilio_auth_token)
        page.twilio_auth_token_last4 = twilio_auth_token[-4:]
    page.full_clean(exclude=["company"])
    page.save()
    audit_record(audit=audit, company=company, kind="loyalty_page.updated", obj=page, if_changed=True,
                 changes=audit_changes(before, _snapshot(page), secret_fields=("twilio_auth_token",)))
    return page


def loyalty_page_test_message_send(*, company, audit: AuditContext | None, to: str) -> SentMessage:
    """Send "Test message from <company>" to `to` with the saved settings; the SentMessage.
    Raises SmsNotSent. Audited either way (it is a message the company may pay for)."""
    body = f"Test message from {company.name}"
    try:
        sent = sms_send(company=company, to=to, body=body, purpose="test")
    except SmsNotSent as exc:
        audit_record(audit=audit, company=company, kind="loyalty_page.test_message_sent",
                     extra={"to": to, "state": "failed", "error": exc.extra.get("provider_error", "")})
        raise
    audit_record(audit=audit, company=company, kind="loyalty_page.test_message_sent", obj=sent,
                 extra={"to": to, "state": sent.state, "provider": sent.provider})
    return sent
