from django.conf import settings
from django.db import models
from django.db.models import Q

from loyalty.models import Persona
from stores.models import Company, RetailStore


class QueueState(models.TextChoices):
    WAITING = "waiting", "Waiting"
    SERVING = "serving", "Being served"
    DONE = "done", "Done"
    LEFT = "left", "Removed"


# A customer is in a store's queue at most once at a time: these states hold the place.
IN_LINE = (QueueState.WAITING, QueueState.SERVING)


class QueueEntry(models.Model):
    """A customer who checked in to a store's waiting room."""

    State = QueueState

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    store = models.ForeignKey(RetailStore, on_delete=models.CASCADE, related_name="queue_entries")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="queue_entries")
    # The store's local date of the check-in: the queue shows today's, by the store's clock.
    local_date = models.DateField()
    checked_in_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=QueueState.choices, default=QueueState.WAITING)
    served_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    serving_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["checked_in_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=QueueState.values), name="queue_state_valid"),
            # Checking in again while in line keeps the one place; after "done" they may
            # come back the same day.
            models.UniqueConstraint(fields=["store", "persona", "local_date"],
                                    condition=Q(state__in=IN_LINE), name="queue_one_place_per_persona"),
            models.CheckConstraint(condition=~Q(state=QueueState.SERVING) | Q(serving_at__isnull=False),
                                   name="queue_serving_has_start"),
        ]
        indexes = [
            models.Index(fields=["store", "local_date", "checked_in_at"], name="queue_store_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.persona} at {self.store} ({self.state})"
