from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from .catalog import catalog_changed
from .models import LoyaltyProgram, Offer, Prompt, Tier

# Sent once the enrolment has committed, with `persona`: a customer joined the loyalty
# program here (staff, waiting room, API), so integrations may tell the POS about them.
persona_enrolled = Signal()


@receiver([post_save, post_delete], sender=LoyaltyProgram)
@receiver([post_save, post_delete], sender=Offer)
@receiver([post_save, post_delete], sender=Tier)
@receiver([post_save, post_delete], sender=Prompt)
def rules_changed(sender, instance, **kwargs):
    if sender is Prompt and kwargs.get("update_fields") == frozenset({"times_fired"}):
        return  # counting firings does not change the rules
    catalog_changed(instance.company_id)


@receiver(m2m_changed, sender=Offer.stores.through)
@receiver(m2m_changed, sender=Offer.tiers.through)
def offer_scope_changed(sender, instance, **kwargs):
    if kwargs.get("action", "").startswith("post_"):
        catalog_changed(instance.company_id)


# Sent inside the merge's database transaction, with `survivor` and `duplicate`, before the
# duplicate is deleted: apps that keep rows of a persona move them to the survivor.
persona_merging = Signal()


# Sent inside the transaction that recorded or changed a sale, with `company_id`: apps that
# derive figures from sales (analytics) refresh them once it commits.
sales_changed = Signal()


# Sent inside the erasure's transaction, with `persona` (still holding its data) and `phone`:
# apps that keep rows of the customer (sign-in sessions and codes) end or blank them.
persona_erasing = Signal()
