from django.dispatch import Signal

# Sent after a sync run succeeds, with `connection` and `run`: audiences refresh on it.
sync_completed = Signal()
