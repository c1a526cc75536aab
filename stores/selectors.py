from django.http import Http404

from .models import RetailStore


def store_get(*, company, store_id) -> RetailStore:
    """One of the company's stores; another company's id, or no id at all, is a 404."""
    try:
        return company.stores.get(pk=store_id)
    except (RetailStore.DoesNotExist, ValueError, TypeError):
        raise Http404("No such store.") from None
