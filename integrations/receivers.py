"""What integrations do when something happens elsewhere in the platform."""

from django.db import transaction as db
from django.dispatch import receiver

from loyalty.signals import persona_enrolled, persona_erasing, persona_merging


@receiver(persona_enrolled)
def push_signup_to_pos(sender, persona, **kwargs):
    """A persona enrolled here is created in Cova (when the company is connected)."""
    from .services.cova import signup_push_queue
    from .tasks import signup_push

    for push in signup_push_queue(persona=persona):
        db.on_commit(lambda pk=push.pk: signup_push.delay(pk))


@receiver(persona_merging)
def signup_pushes_follow_the_merge(sender, survivor, duplicate, **kwargs):
    """The duplicate's signup pushes become the survivor's, unless the survivor has its own
    for that credential (one push per persona and credential)."""
    from .models import SignupPush

    own = SignupPush.objects.filter(persona=survivor).values("credential_id")
    SignupPush.objects.filter(persona=duplicate).exclude(credential_id__in=own).update(persona=survivor)


@receiver(persona_erasing)
def signup_pushes_dropped_on_erasure(sender, persona, **kwargs):
    """A customer erased at their request is not created in Cova: pushes not yet sent go
    (the task finds nothing to send). One in flight stays, for its outcome to be recorded:
    Cova may create the customer before it hears nothing more."""
    from .models import SignupPush

    in_flight = {"state": SignupPush.State.QUEUED, "attempts__gt": 0}
    SignupPush.objects.filter(persona=persona).exclude(state=SignupPush.State.SENT).exclude(**in_flight).delete()
