"""What the loyalty page lets go of when a customer's data is erased."""

from django.dispatch import receiver

from loyalty.signals import persona_erasing

from .models import LoginCode, SentMessage
from .sessions import customer_sessions_revoke


@receiver(persona_erasing)
def persona_erasing_sign_out(sender, persona, phone, **kwargs):
    """Signed out everywhere; their codes gone and their number blanked in the outbox."""
    customer_sessions_revoke(persona=persona)
    if phone:
        LoginCode.objects.filter(company_id=persona.company_id, phone=phone).delete()
        SentMessage.objects.filter(company_id=persona.company_id, to=phone).update(to="")
