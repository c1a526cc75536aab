"""Row locks for balance changes. Personas are always locked in primary-key order, so two
transactions that lock the same personas cannot deadlock."""

from django.http import Http404

from .models import Persona


def personas_for_update():
    return Persona.objects.select_for_update(of=("self",)).order_by("pk")


def _remember(persona: Persona) -> Persona:
    # What the derived fields were when locked, so only real changes are written back.
    persona._loaded_derived = (persona.points_balance, persona.lifetime_points,
                               persona.last_purchase_at)
    return persona


def persona_lock(*, company, persona_id) -> Persona:
    """Lock one persona of `company`; a missing or foreign id is a 404."""
    try:
        return _remember(personas_for_update().get(company=company, pk=persona_id))
    except (Persona.DoesNotExist, ValueError, TypeError):
        raise Http404("No such persona.") from None


def personas_lock(*, company, persona_ids) -> dict[int, Persona]:
    ids = sorted({pk for pk in persona_ids if pk is not None})
    if not ids:
        return {}
    return {p.pk: _remember(p)
            for p in personas_for_update().filter(company=company, pk__in=ids)}
