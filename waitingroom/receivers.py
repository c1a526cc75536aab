"""What the waiting room does when something happens elsewhere in the platform."""

from django.dispatch import receiver

from loyalty.signals import persona_merging

from .models import IN_LINE, QueueEntry


@receiver(persona_merging)
def queue_entries_follow_the_merge(sender, survivor, duplicate, **kwargs):
    """The duplicate's places in line become the survivor's; where both are in line at a
    store on the same day, the survivor keeps their own place."""
    in_line = QueueEntry.objects.filter(persona=survivor, state__in=IN_LINE)
    for store_id, local_date in in_line.values_list("store_id", "local_date"):
        QueueEntry.objects.filter(persona=duplicate, store_id=store_id, local_date=local_date,
                                  state__in=IN_LINE).delete()
    QueueEntry.objects.filter(persona=duplicate).update(persona=survivor)
