"""Audiences: save, count, preview, calculate (materialise) and the prebuilt templates."""

from __future__ import annotations

import logging
import time

from django.db import IntegrityError, connections
from django.db import connection as db_connection
from django.db import transaction as db
from django.utils import timezone

from loyalty.models import Persona
from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError
from stores.models import RetailStore
from stores.replica import reads_from_replica

from .compiler import RuleError, audiences_referenced, empty_rules, rules_clean, rules_compile
from .models import Audience, AudienceMember

log = logging.getLogger(__name__)

PREVIEW_SIZE = 20
AUDIT_FIELDS = ("name", "description", "rules")


class AudienceRefused(DomainError):
    """A tree or name that cannot be saved; `extra["path"]` names the bad node."""


def _refused(exc: RuleError) -> AudienceRefused:
    return AudienceRefused(exc.message if exc.path == "rules" else f"{exc.path}: {exc.message}",
                           code="invalid_rules", extra={"field": "rules", "path": exc.path})


# --- facts -------------------------------------------------------------------------------------

# Recency 3 = bought in the last 30 days, 2 = in the last 90, 1 = longer ago; frequency 3 =
# ten orders or more, 2 = three or more; monetary: champions have spent 500 or more.
_FACTS_REFRESH = """
WITH sales AS (
    SELECT persona_id, count(*) AS n, sum(total) AS spend, min(occurred_at) AS first_at,
           max(occurred_at) AS last_at
    FROM loyalty_transaction
    WHERE company_id = %(company)s AND status = 'completed' AND persona_id IS NOT NULL
    GROUP BY persona_id
), redeemed AS (
    SELECT DISTINCT persona_id FROM loyalty_redemption WHERE company_id = %(company)s AND state = 'redeemed'
), scored AS (
    SELECT p.id, coalesce(s.n, 0) AS n, coalesce(s.spend, 0) AS spend, s.first_at, s.last_at,
           r.persona_id IS NOT NULL AS used,
           CASE WHEN s.last_at IS NULL THEN 0
                WHEN s.last_at >= %(now)s::timestamptz - interval '30 days' THEN 3
                WHEN s.last_at >= %(now)s::timestamptz - interval '90 days' THEN 2 ELSE 1 END AS r,
           CASE WHEN coalesce(s.n, 0) >= 10 THEN 3 WHEN coalesce(s.n, 0) >= 3 THEN 2 ELSE 1 END AS f
    FROM loyalty_persona p
    LEFT JOIN sales s ON s.persona_id = p.id
    LEFT JOIN redeemed r ON r.persona_id = p.id
    WHERE p.company_id = %(company)s
)
INSERT INTO audiences_personafacts (persona_id, company_id, order_count, lifetime_spend, first_purchase_at,
                                    last_purchase_at, used_loyalty_discount, segment, computed_at)
SELECT id, %(company)s, n, spend, first_at, last_at, used,
       CASE WHEN r = 0 THEN ''
            WHEN r = 3 AND f = 3 AND spend >= 500 THEN 'champion'
            WHEN f = 3 THEN 'loyal'
            WHEN r = 3 AND n = 1 THEN 'new'
            WHEN r = 3 THEN 'promising'
            WHEN r = 1 AND f >= 2 THEN 'at_risk'
            WHEN r = 1 THEN 'lost'
            ELSE 'needs_attention' END,
       %(now)s::timestamptz
FROM scored
ON CONFLICT (persona_id) DO UPDATE SET
    order_count = EXCLUDED.order_count, lifetime_spend = EXCLUDED.lifetime_spend,
    first_purchase_at = EXCLUDED.first_purchase_at, last_purchase_at = EXCLUDED.last_purchase_at,
    used_loyalty_discount = EXCLUDED.used_loyalty_discount, segment = EXCLUDED.segment,
    computed_at = EXCLUDED.computed_at
WHERE (audiences_personafacts.order_count, audiences_personafacts.lifetime_spend,
       audiences_personafacts.first_purchase_at, audiences_personafacts.last_purchase_at,
       audiences_personafacts.used_loyalty_discount, audiences_personafacts.segment)
      IS DISTINCT FROM (EXCLUDED.order_count, EXCLUDED.lifetime_spend, EXCLUDED.first_purchase_at,
                        EXCLUDED.last_purchase_at, EXCLUDED.used_loyalty_discount, EXCLUDED.segment)
"""


def persona_facts_refresh(*, company, now=None) -> None:
    """Recompute every persona's purchase facts and segment for the company, set-wise."""
    with db_connection.cursor() as cursor:
        cursor.execute(_FACTS_REFRESH, {"company": company.pk, "now": now or timezone.now()})


# --- saving ------------------------------------------------------------------------------------

def _check_references(company, tree: dict, *, audience: Audience | None) -> None:
    """Stores and audiences named in the tree are this company's; no audience depends on
    itself through membership conditions."""

    def walk(node, path):
        if node["type"] == "group":
            for i, child in enumerate(node["children"]):
                walk(child, f"{path}.children[{i}]" if path else f"children[{i}]")
            return
        value_path = f"{path}.value" if path else "value"
        if node["trait"] in ("favourite_store", "stores_purchased_at") and node["value"]:
            known = set(RetailStore.objects.filter(company=company, pk__in=node["value"])
                        .values_list("pk", flat=True))
            missing = [v for v in node["value"] if v not in known]
            if missing:
                raise RuleError(value_path, f"no store {missing[0]} in this company")
        if node["trait"] == "purchase":
            for i, item in enumerate(node["value"]["filters"]):
                if item["property"] == "store":
                    walk({"type": "condition", "trait": "favourite_store", "value": item["value"]},
                         f"{path}.value.filters[{i}]" if path else f"value.filters[{i}]")
        if node["trait"] == "audience":
            if not Audience.objects.filter(company=company, pk=node["value"]).exists():
                raise RuleError(value_path, f"no audience {node['value']} in this company")
            if audience is not None and _depends_on(company, node["value"], audience.pk):
                raise RuleError(value_path, "this would make the audience depend on itself")

    walk(tree, "")


def _depends_on(company, start: int, target: int) -> bool:
    seen, stack = set(), [start]
    while stack:
        current = stack.pop()
        if current == target:
            return True
        if current in seen:
            continue
        seen.add(current)
        rules = Audience.objects.filter(company=company, pk=current).values_list("rules", flat=True).first()
        if rules:
            try:
                stack.extend(audiences_referenced(rules_clean(rules)))
            except RuleError:
                continue
    return False


def rules_validate(*, company, rules, audience: Audience | None = None) -> dict:
    """The cleaned tree, or AudienceRefused saying where it is wrong."""
    try:
        tree = rules_clean(rules)
        _check_references(company, tree, audience=audience)
    except RuleError as exc:
        raise _refused(exc) from None
    return tree


def audience_save(*, company, name: str, rules, audience: Audience | None = None, description: str = "",
                  template_key: str = "", user=None, audit: AuditContext | None = None) -> Audience:
    name = (name or "").strip()
    if not name:
        raise AudienceRefused("Give the audience a name.", extra={"field": "name"})
    if audience is not None and audience.company_id != company.pk:
        raise AudienceRefused("That audience belongs to another company.")
    if audience is not None and audience.kind == Audience.Kind.STATIC:
        raise AudienceRefused("A static audience has no rules: its members are chosen on the Personas list.")
    tree = rules_validate(company=company, rules=rules, audience=audience)
    before = audit_snapshot(audience, AUDIT_FIELDS) if audience is not None else None
    audience = audience or Audience(company=company, created_by=user, template_key=template_key)
    audience.name, audience.rules, audience.description = name[:120], tree, (description or "")[:300]
    try:
        with db.atomic():
            audience.save()
            audit_record(audit=audit, company=company,
                         kind="audience.updated" if before else "audience.created", obj=audience,
                         changes=audit_changes(before, audit_snapshot(audience, AUDIT_FIELDS)),
                         if_changed=before is not None,
                         extra={"template": template_key} if template_key else None)
    except IntegrityError:
        raise AudienceRefused(f"There is already an audience named '{name}'.",
                              extra={"field": "name"}) from None
    return audience


def audience_delete(*, audience: Audience, audit: AuditContext | None = None) -> None:
    users = [a.name for a in Audience.objects.filter(company_id=audience.company_id).exclude(pk=audience.pk)
             if _names_audience(a, audience.pk)]
    if users:
        raise AudienceRefused(f"{', '.join(users)} use{'s' if len(users) == 1 else ''} this audience; "
                              "change them first.", code="in_use")
    with db.atomic():
        audit_record(audit=audit, company=audience.company_id, kind="audience.deleted", obj=audience,
                     changes=audit_changes(audit_snapshot(audience, AUDIT_FIELDS), None))
        audience.delete()


def _names_audience(audience: Audience, target: int) -> bool:
    try:
        return target in audiences_referenced(rules_clean(audience.rules))
    except RuleError:
        return False


# --- counting and previews -----------------------------------------------------------------------

def _compiled(company, rules, now=None):
    try:
        return rules_compile(rules, company_id=company.pk, tz=company.timezone, now=now)
    except RuleError as exc:
        raise _refused(exc) from None


# The sets of purchasers a tree asks about are hashed in memory; a larger work_mem keeps a
# million-customer company's sets hashed instead of probed row by row. Index probes are
# cheap on SSD-backed, mostly cached data (so recent sales are found through their index),
# and JIT compiling costs more than it saves on queries of about a second. The scan of
# every customer is worth sharing between parallel workers even when each hands back many
# rows: the default costs of starting workers and passing rows keep it in one process.
AUDIENCE_WORK_MEM = "128MB"


def _roomy(cursor) -> None:
    cursor.execute(f"SET LOCAL work_mem = '{AUDIENCE_WORK_MEM}'")
    cursor.execute("SET LOCAL random_page_cost = 1.1")
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL parallel_setup_cost = 10")
    cursor.execute("SET LOCAL parallel_tuple_cost = 0.001")


def audience_count(*, company, rules, now=None) -> int:
    """How many customers the rules match; from the replica when there is one."""
    sql, params = _compiled(company, rules, now).select("count(*)")
    with reads_from_replica() as alias, db.atomic(using=alias), connections[alias].cursor() as cursor:
        _roomy(cursor)
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def audience_member_ids(*, company, rules, now=None) -> list[int]:
    sql, params = _compiled(company, rules, now).select("p.id")
    with db.atomic(), db_connection.cursor() as cursor:
        _roomy(cursor)
        cursor.execute(sql + " ORDER BY p.id", params)
        return [row[0] for row in cursor.fetchall()]


def audience_preview(*, company, rules, limit: int = PREVIEW_SIZE, now=None) -> list[Persona]:
    """The first members by name, for the builder; from the replica when there is one."""
    sql, params = _compiled(company, rules, now).select("p.id")
    with reads_from_replica() as alias:
        with db.atomic(using=alias), connections[alias].cursor() as cursor:
            _roomy(cursor)
            cursor.execute(f"SELECT q.id FROM ({sql}) q JOIN loyalty_persona p ON p.id = q.id "
                           f"ORDER BY p.last_name, p.first_name, p.id LIMIT {int(limit)}", params)
            ids = [row[0] for row in cursor.fetchall()]
        by_id = {p.pk: p for p in Persona.objects.using(alias).filter(company=company, pk__in=ids)}
    return [by_id[i] for i in ids if i in by_id]


# --- materialising -------------------------------------------------------------------------------

_STATS = """
SELECT count(*), count(*) FILTER (WHERE p.sms_opt_in), count(*) FILTER (WHERE p.email_opt_in),
       coalesce(round(avg(coalesce(f.lifetime_spend, 0)), 2), 0)
FROM audience_new n JOIN loyalty_persona p ON p.id = n.id
LEFT JOIN audiences_personafacts f ON f.persona_id = p.id
"""


def audience_refresh(*, audience: Audience, now=None) -> Audience:
    """Calculate the audience and store its members, counting who entered and who left.
    A failure is recorded on the audience (and raised as AudienceRefused)."""
    company = audience.company
    started = time.monotonic()
    now = now or timezone.now()
    if audience.kind == Audience.Kind.STATIC:
        _static_recount(audience.pk, now=now, started=started)
        audience.refresh_from_db()
        return audience
    try:
        sql, params = _compiled(company, audience.rules, now).select("p.id")
        with db.atomic(), db_connection.cursor() as cursor:
            Audience.objects.select_for_update().filter(pk=audience.pk).first()
            _roomy(cursor)
            cursor.execute("DROP TABLE IF EXISTS audience_new")
            cursor.execute(f"CREATE TEMP TABLE audience_new ON COMMIT DROP AS {sql}", params)
            cursor.execute("CREATE INDEX ON audience_new (id)")
            cursor.execute("ANALYZE audience_new")
            cursor.execute("DELETE FROM audiences_audiencemember m WHERE m.audience_id = %(a)s "
                           "AND NOT EXISTS (SELECT 1 FROM audience_new n WHERE n.id = m.persona_id)",
                           {"a": audience.pk})
            exited = cursor.rowcount
            cursor.execute("INSERT INTO audiences_audiencemember (audience_id, persona_id, added_at) "
                           "SELECT %(a)s, n.id, %(now)s::timestamptz FROM audience_new n "
                           "ON CONFLICT (audience_id, persona_id) DO NOTHING", {"a": audience.pk, "now": now})
            entered = cursor.rowcount
            cursor.execute(_STATS)
            size, sms, email, cltv = cursor.fetchone()
            Audience.objects.filter(pk=audience.pk).update(
                size=size, sms_opt_ins=sms, email_opt_ins=email, average_cltv=cltv, entered=entered,
                exited=exited, calculated_at=now, calculation_ms=int((time.monotonic() - started) * 1000),
                error="")
    except Exception as exc:
        message = exc.message if isinstance(exc, DomainError) else f"Calculation failed: {exc}"
        log.warning("audience %s failed: %s", audience.pk, message)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        Audience.objects.filter(pk=audience.pk).update(error=message, calculated_at=now,
                                                       calculation_ms=elapsed_ms)
        audience.refresh_from_db()
        raise AudienceRefused(message, code="calculation_failed") from exc
    audience.refresh_from_db()
    return audience


def audiences_refresh_all(*, company, now=None) -> dict[str, int]:
    """Purchase facts, then every audience (those others build on first). One failing
    audience records its error and does not stop the rest."""
    now = now or timezone.now()
    persona_facts_refresh(company=company, now=now)
    audiences = list(Audience.objects.filter(company=company))
    order, done = [], set()

    def visit(audience, trail=()):
        if audience.pk in done or audience.pk in trail:
            return
        try:
            needed = audiences_referenced(rules_clean(audience.rules))
        except RuleError:
            needed = set()
        for other in audiences:
            if other.pk in needed:
                visit(other, (*trail, audience.pk))
        done.add(audience.pk)
        order.append(audience)

    for audience in audiences:
        visit(audience)
    outcome = {"calculated": 0, "failed": 0}
    for audience in order:
        try:
            audience_refresh(audience=audience, now=now)
            outcome["calculated"] += 1
        except AudienceRefused:
            outcome["failed"] += 1
    return outcome


# --- static audiences -----------------------------------------------------------------------------

_STATIC_STATS = """
SELECT count(*), count(*) FILTER (WHERE p.sms_opt_in), count(*) FILTER (WHERE p.email_opt_in),
       coalesce(round(avg(coalesce(f.lifetime_spend, 0)), 2), 0)
FROM audiences_audiencemember m JOIN loyalty_persona p ON p.id = m.persona_id
LEFT JOIN audiences_personafacts f ON f.persona_id = p.id
WHERE m.audience_id = %(a)s
"""


def _static_recount(audience_id: int, *, now=None, started=None, entered: int = 0, exited: int = 0) -> None:
    started = started if started is not None else time.monotonic()
    with db_connection.cursor() as cursor:
        cursor.execute(_STATIC_STATS, {"a": audience_id})
        size, sms, email, cltv = cursor.fetchone()
    Audience.objects.filter(pk=audience_id).update(
        size=size, sms_opt_ins=sms, email_opt_ins=email, average_cltv=cltv, entered=entered, exited=exited,
        calculated_at=now or timezone.now(), calculation_ms=int((time.monotonic() - started) * 1000),
        error="")


def audience_static_create(*, company, name: str, user=None, audit: AuditContext | None = None) -> Audience:
    """A static audience: no rules, members added and removed by hand from the personas list."""
    name = (name or "").strip()
    if not name:
        raise AudienceRefused("Give the new audience a name.", extra={"field": "name"})
    audience = Audience(company=company, name=name[:120], kind=Audience.Kind.STATIC, rules=empty_rules(),
                        created_by=user, description="Members chosen on the Personas list.")
    try:
        with db.atomic():
            audience.save()
            audit_record(audit=audit, company=company, kind="audience.created", obj=audience,
                         changes=audit_changes(None, {"name": audience.name, "kind": "static"}))
    except IntegrityError:
        raise AudienceRefused(f"There is already an audience named '{name}'.",
                              extra={"field": "name"}) from None
    return audience


def audience_static_get(*, company, audience_id) -> Audience:
    try:
        return Audience.objects.get(company=company, pk=audience_id, kind=Audience.Kind.STATIC)
    except (Audience.DoesNotExist, ValueError, TypeError):
        raise AudienceRefused("No such static audience.", code="no_audience",
                              extra={"field": "audience"}) from None


def audience_members_add(*, company, audience_id: int, persona_ids: list[int]) -> tuple[int, int]:
    """Add the personas (of `company`) to its static audience. Returns (added, already in)."""
    audience = audience_static_get(company=company, audience_id=audience_id)
    with db.atomic(), db_connection.cursor() as cursor:
        Audience.objects.select_for_update().filter(pk=audience.pk).first()
        cursor.execute("INSERT INTO audiences_audiencemember (audience_id, persona_id, added_at) "
                       "SELECT %(a)s, p.id, %(now)s FROM loyalty_persona p "
                       "WHERE p.company_id = %(c)s AND p.id = ANY(%(ids)s) "
                       "ON CONFLICT (audience_id, persona_id) DO NOTHING",
                       {"a": audience.pk, "c": company.pk, "ids": list(persona_ids), "now": timezone.now()})
        added = cursor.rowcount
        _static_recount(audience.pk, entered=added)
    return added, len(persona_ids) - added


def audience_members_remove(*, company, audience_id: int, persona_ids: list[int]) -> tuple[int, int]:
    """Take the personas out of the company's static audience. Returns (removed, not in it)."""
    audience = audience_static_get(company=company, audience_id=audience_id)
    with db.atomic():
        Audience.objects.select_for_update().filter(pk=audience.pk).first()
        removed, _ = (AudienceMember.objects.filter(audience=audience, persona_id__in=list(persona_ids),
                                                    persona__company=company).delete())
        _static_recount(audience.pk, exited=removed)
    return removed, len(persona_ids) - removed


__all__ = ["audience_members_add", "audience_members_remove", "audience_static_create", "audience_static_get",
           "AudienceRefused", "audience_count", "audience_delete", "audience_member_ids",
           "audience_preview", "audience_refresh", "audience_save", "audiences_refresh_all", "empty_rules",
           "persona_facts_refresh", "rules_validate"]
