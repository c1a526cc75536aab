"""POS prompts: rules on the basket or the customer that put a message in front of the
cashier ("offer the 2-year warranty on TVs over $500"), and which of them fire now."""

import atexit
import logging
import os
import threading
import zoneinfo
from collections import Counter
from decimal import Decimal, InvalidOperation

from django.core.cache import cache
from django.db import IntegrityError, connections
from django.db import transaction as db
from django.db.models import F
from django.utils import timezone

from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError
from stores.redis_guard import REDIS_ERRORS, redis_failed, redis_up
from stores.versions import redis_client

from ..models import Persona, Prompt, Tier

logger = logging.getLogger(__name__)

C = Prompt.Condition
TEXT_CONDITIONS = (C.CATEGORY, C.BRAND, C.SKU)
AMOUNT_CONDITIONS = (C.ITEM_PRICE_OVER, C.BASKET_TOTAL_OVER)
PERSONA_CONDITIONS = (C.NOT_ENROLLED, C.MISSING_EMAIL, C.MISSING_PHONE, C.MISSING_BIRTHDAY,
                      C.BIRTHDAY_THIS_MONTH, C.TIER)
PROMPT_FIELDS = ("name", "condition", "value", "message", "suggested_sku", "is_active")


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(message, code="invalid", extra={"field": field})


def _prompt_validate(prompt: Prompt) -> None:
    prompt.name = " ".join((prompt.name or "").split())
    prompt.value = (prompt.value or "").strip()
    prompt.message = (prompt.message or "").strip()
    prompt.suggested_sku = (prompt.suggested_sku or "").strip()
    if not prompt.name:
        raise _invalid("name", "Name the prompt, e.g. TV warranty.")
    if len(prompt.name) > 120:
        raise _invalid("name", "At most 120 characters.")
    if prompt.condition not in C.values:
        raise _invalid("condition", "Pick when the prompt fires.")
    if prompt.condition in TEXT_CONDITIONS:
        if not prompt.value:
            label = {C.CATEGORY: "category", C.BRAND: "brand", C.SKU: "SKU"}[prompt.condition]
            raise _invalid("value", f"Enter the {label} that makes the prompt fire.")
        if len(prompt.value) > 200:
            raise _invalid("value", "At most 200 characters.")
    elif prompt.condition in AMOUNT_CONDITIONS:
        try:
            amount = Decimal(prompt.value.replace(",", "").lstrip("$"))
        except InvalidOperation:
            raise _invalid("value", "Enter an amount, e.g. 500.") from None
        if not amount.is_finite() or amount < 0:
            raise _invalid("value", "Enter an amount of 0 or more, e.g. 500.")
        prompt.value = str(amount.quantize(Decimal("0.01")))
    elif prompt.condition == C.TIER:
        tier = Tier.objects.filter(company_id=prompt.company_id, name__iexact=prompt.value).first()
        if tier is None:
            raise _invalid("value", "Enter the name of one of your tiers.")
        prompt.value = tier.name
    else:
        prompt.value = ""  # persona conditions take no value
    if not prompt.message:
        raise _invalid("message", "Write what the cashier should see.")
    if len(prompt.message) > 300:
        raise _invalid("message", "At most 300 characters.")
    if len(prompt.suggested_sku) > 100:
        raise _invalid("suggested_sku", "At most 100 characters.")
    clash = (Prompt.objects.filter(company_id=prompt.company_id, name__iexact=prompt.name)
             .exclude(pk=prompt.pk))
    if clash.exists():
        raise _invalid("name", "Another prompt already has this name.")


def _prompt_save(prompt: Prompt) -> Prompt:
    try:
        with db.atomic():
            prompt.save()
    except IntegrityError as exc:
        raise _invalid("name", "Another prompt already has this name.") from exc
    return prompt


def prompt_create(*, company, name: str, condition: str, message: str, value: str = "",
                  suggested_sku: str = "", is_active: bool = True,
                  audit: AuditContext | None = None) -> Prompt:
    prompt = Prompt(company=company, name=name, condition=condition, value=value, message=message,
                    suggested_sku=suggested_sku, is_active=is_active)
    with db.atomic(durable=True):
        _prompt_validate(prompt)
        prompt = _prompt_save(prompt)
        audit_record(audit=audit, company=company, kind="prompt.created", obj=prompt,
                     changes=audit_changes(None, audit_snapshot(prompt, PROMPT_FIELDS)))
        return prompt


def prompt_update(*, prompt: Prompt, audit: AuditContext | None = None, **fields) -> Prompt:
    unknown = set(fields) - set(PROMPT_FIELDS)
    if unknown:
        raise DomainError(f"Unknown field: {', '.join(sorted(unknown))}.", code="unknown_field")
    with db.atomic(durable=True):
        prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
        before = audit_snapshot(prompt, PROMPT_FIELDS)
        for name, value in fields.items():
            setattr(prompt, name, value)
        _prompt_validate(prompt)
        prompt = _prompt_save(prompt)
        audit_record(audit=audit, company=prompt.company_id, kind="prompt.updated", obj=prompt,
                     changes=audit_changes(before, audit_snapshot(prompt, PROMPT_FIELDS)),
                     if_changed=True)
        return prompt


def prompt_delete(*, prompt: Prompt, audit: AuditContext | None = None) -> None:
    with db.atomic():
        audit_record(audit=audit, company=prompt.company_id, kind="prompt.deleted", obj=prompt,
                     changes=audit_changes(audit_snapshot(prompt, PROMPT_FIELDS), None))
        Prompt.objects.filter(pk=prompt.pk).delete()


# --- firing ----------------------------------------------------------------------------------

def _dec(value) -> Decimal:
    if value is None or value == "":
        return Decimal("0")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return Decimal("0")
    return result if result.is_finite() else Decimal("0")


def _fold(value) -> str:
    return " ".join(str(value or "").split()).casefold()


def _basket_facts(basket, conditions) -> dict:
    """What the prompts' `conditions` ask of the basket, and only that: the POS asks on
    every scan."""
    items = list(basket or [])
    facts = {}
    for condition in (C.CATEGORY, C.BRAND, C.SKU):
        if condition in conditions:
            facts[condition] = {_fold(i.get(condition)) for i in items} - {""}
    if C.ITEM_PRICE_OVER in conditions:
        facts["max_price"] = max((_dec(i.get("unit_price")) for i in items), default=None)
    if C.BASKET_TOTAL_OVER in conditions:
        facts["total"] = sum((_dec(i.get("quantity")) * _dec(i.get("unit_price")) for i in items),
                             Decimal("0"))
    return facts


def _persona_matches(condition: str, value: str, persona: Persona, today) -> bool:
    if condition == C.NOT_ENROLLED:
        return not persona.is_member
    if condition == C.MISSING_EMAIL:
        return not persona.email
    if condition == C.MISSING_PHONE:
        return not persona.phone
    if condition == C.MISSING_BIRTHDAY:
        return persona.birth_date is None
    if condition == C.BIRTHDAY_THIS_MONTH:
        return persona.birth_date is not None and persona.birth_date.month == today.month
    if condition == C.TIER:
        return bool(persona.tier) and _fold(persona.tier) == _fold(value)
    return False


def prompt_matches(prompt: Prompt, *, facts: dict, persona: Persona | None, today) -> bool:
    condition = prompt.condition
    if condition in TEXT_CONDITIONS:
        return _fold(prompt.value) in facts[condition]
    if condition == C.ITEM_PRICE_OVER:
        return facts["max_price"] is not None and facts["max_price"] >= _dec(prompt.value)
    if condition == C.BASKET_TOTAL_OVER:
        return facts["total"] > 0 and facts["total"] >= _dec(prompt.value)
    if persona is None:
        return False
    return _persona_matches(condition, prompt.value, persona, today)


def prompts_firing(*, company, persona: Persona | None, basket,
                   prompts: list[Prompt] | None = None) -> list[Prompt]:
    """The company's active prompts that fire for this basket (dicts with sku, product,
    brand, category, quantity, unit_price; may be empty) and customer (may be None: then
    only basket conditions fire). `prompts` (the catalog's) saves the query. Firings are
    counted (in the process, then the shared cache) and added to the prompts by
    prompt_fired_counts_flush: a database write on every lookup would make concurrent
    registers queue on one row."""
    if prompts is None:
        prompts = list(Prompt.objects.filter(company=company, is_active=True).order_by("name", "pk"))
    if not prompts:
        return []
    facts = _basket_facts(basket, {p.condition for p in prompts})
    today = timezone.localtime(timezone.now(), zoneinfo.ZoneInfo(company.timezone)).date()
    fired = [p for p in prompts if prompt_matches(p, facts=facts, persona=persona, today=today)]
    if fired:
        _firings_count([p.pk for p in fired])
    return fired


# Firings are counted in the process first and added to the shared cache at most once a
# second, by a timer thread: a Redis round trip on every lookup was a sixth of its cost.
# A process that dies hard loses at most that last second of counts.
FIRINGS_SEND_SECONDS = 1.0
_firings_pending: Counter = Counter()
_firings_lock = threading.Lock()
_firings_timer: threading.Timer | None = None


def _firings_count(prompt_ids: list[int]) -> None:
    global _firings_timer
    with _firings_lock:
        _firings_pending.update(prompt_ids)
        if _firings_timer is None:
            _firings_timer = threading.Timer(FIRINGS_SEND_SECONDS, _firings_send)
            _firings_timer.daemon = True
            _firings_timer.start()


def _firings_send() -> None:
    """This process's counted firings into the shared cache: one pipelined INCRBY each
    (Django's cache API would take two round trips per key). With Redis away they are
    added to the prompts in the database instead, so a process that stops meanwhile loses
    none."""
    global _firings_timer
    with _firings_lock:
        pending = dict(_firings_pending)
        _firings_pending.clear()
        if _firings_timer is not None and _firings_timer is not threading.current_thread():
            _firings_timer.cancel()  # sent now: nothing left for it
        _firings_timer = None
    if not pending:
        return
    if redis_up():
        try:
            with redis_client().pipeline(transaction=False) as pipe:
                for pk, count in pending.items():
                    pipe.incrby(cache.make_and_validate_key(_fired_key(pk)), count)
                pipe.execute()
            return
        except REDIS_ERRORS as exc:
            # Most often Redis refused the connection and nothing was written. A reply
            # lost after the commands were sent leaves the outcome unknown; counting here
            # then may count those firings twice, which beats losing them.
            redis_failed("prompt firings", exc)
    _firings_to_database(pending)


def _firings_to_database(pending: dict[int, int]) -> None:
    try:
        with db.atomic():
            for pk, count in sorted(pending.items()):  # one lock order for every process
                Prompt.objects.filter(pk=pk).update(times_fired=F("times_fired") + count)
    except Exception:
        logger.warning("Could not count %s prompt firings; kept for the next try.",
                       sum(pending.values()), exc_info=True)
        with _firings_lock:
            _firings_pending.update(pending)
    finally:
        if isinstance(threading.current_thread(), threading.Timer):
            connections.close_all()  # the timer's thread ends here; so does its connection


def _firings_forget_timer() -> None:
    # A forked child (a Celery or gunicorn worker) has the counts but not the timer thread.
    global _firings_timer
    _firings_timer = None


os.register_at_fork(after_in_child=_firings_forget_timer)
atexit.register(_firings_send)


def _fired_key(prompt_id: int) -> str:
    return f"prompt-fired:{prompt_id}"


def prompt_fired_counts_flush(*, company=None) -> int:
    """Move the counted firings into Prompt.times_fired (the periodic task, and before
    the prompts page shows them). Returns how many firings moved."""
    _firings_send()  # this process's own, without waiting for its timer
    if not redis_up():
        return 0  # what Redis holds waits for it; what could not reach it is in the database
    prompts = Prompt.objects.all() if company is None else Prompt.objects.filter(company=company)
    ids = list(prompts.values_list("pk", flat=True))
    moved = 0
    try:
        pending = cache.get_many([_fired_key(pk) for pk in ids])
        for key, count in pending.items():
            if not count:
                continue
            pk = int(key.rsplit(":", 1)[1])
            # The count is taken from Redis in the same transaction: a DECR that fails
            # rolls the addition back, so nothing is counted twice.
            with db.atomic():
                Prompt.objects.filter(pk=pk).update(times_fired=F("times_fired") + count)
                cache.decr(key, count)  # firings counted meanwhile stay for the next flush
            moved += count
    except REDIS_ERRORS as exc:
        redis_failed("prompt firings", exc)
    return moved
