"""Prebuilt audiences a marketer starts from: each is a name, a line of description and the
rule tree it makes for a company (some trees depend on the company's own data, e.g. its
top categories or what its top 10% of customers spend).

`audience_from_template` is the one write here; it saves and calculates the audience.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection as db_connection

from stores.audit import AuditContext
from stores.errors import DomainError

from .compiler import empty_rules
from .models import Audience
from .selectors import top_categories
from .services import AudienceRefused, audience_refresh, audience_save, persona_facts_refresh

TOP_CATEGORIES = 3


@dataclass(frozen=True)
class AudienceTemplate:
    key: str
    name: str
    description: str
    rules_for: Callable[..., dict]  # rules_for(company) -> rule tree


def _tree(*conditions: dict, match: str = "all") -> dict:
    return {**empty_rules(), "match": match, "children": list(conditions)}


def _condition(trait: str, operator: str, value=None) -> dict:
    return {"type": "condition", "trait": trait, "operator": operator, "value": value, "negate": False}


def spend_percentile(*, company, fraction: float = 0.9) -> Decimal:
    """The lifetime spend `fraction` of the company's customers stay at or under."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY lifetime_spend) "
                       "FROM audiences_personafacts WHERE company_id = %s", [fraction, company.pk])
        value = cursor.fetchone()[0]
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


FIXED_TEMPLATES = (
    AudienceTemplate("all_customers", "All customers", "Everyone you know, members or not.",
                     lambda company: empty_rules()),
    AudienceTemplate("loyalty_members", "Loyalty members", "Customers enrolled in your loyalty program.",
                     lambda company: _tree(_condition("is_member", "equals", True))),
    AudienceTemplate("delivery_customers", "Delivery customers", "Anyone who ever had an order delivered.",
                     lambda company: _tree(_condition("purchase", "performed", {
                         "filters": [{"property": "fulfillment", "operator": "contains",
                                      "value": "delivery"}],
                         "within_days": None, "at_least": 1}))),
    AudienceTemplate("lapsed_90_days", "Lapsed 90 days", "Bought before, but not in the last 90 days.",
                     lambda company: _tree(_condition("days_since_last_purchase", "gt", "90"))),
    AudienceTemplate("top_spenders", "Top 10% spenders",
                     "Lifetime spend above what 90% of your customers have spent.",
                     lambda company: _tree(_condition("lifetime_spend", "gt",
                                                      str(spend_percentile(company=company))))),
    AudienceTemplate("birthday_this_month", "Birthday this month", "Customers whose birthday is this month.",
                     lambda company: _tree(_condition("birthday_month", "this_month"))),
    AudienceTemplate("new_this_month", "New this month", "Customers first seen this month.",
                     lambda company: _tree(_condition("created_at", "this_month"))),
    AudienceTemplate("sms_opted_in", "SMS opted-in", "Customers who agreed to text messages.",
                     lambda company: _tree(_condition("sms_opt_in", "equals", True))),
    AudienceTemplate("email_opted_in", "Email opted-in", "Customers who agreed to email.",
                     lambda company: _tree(_condition("email_opt_in", "equals", True))),
    AudienceTemplate("champions", "Champions", "Recent, frequent, big spenders: your best customers.",
                     lambda company: _tree(_condition("segment", "equals", "champion"))),
    AudienceTemplate("at_risk", "At risk", "Used to buy often, not seen for more than 90 days.",
                     lambda company: _tree(_condition("segment", "equals", "at_risk"))),
)


def _category_template(rank: int, name: str) -> AudienceTemplate:
    return AudienceTemplate(
        f"top_category_{rank}", f"{name} buyers", f"Anyone who ever bought {name} (your #{rank} category).",
        lambda company: _tree(_condition("bought_category", "ever", {"name": name})))


def templates_for(*, company) -> list[AudienceTemplate]:
    """The fixed templates, then one per top category of the company."""
    categories = top_categories(company=company, limit=TOP_CATEGORIES)
    return [*FIXED_TEMPLATES, *(_category_template(i, c) for i, c in enumerate(categories, start=1))]


def template_get(*, company, key: str) -> AudienceTemplate | None:
    return next((t for t in templates_for(company=company) if t.key == key), None)


def _free_name(company, name: str) -> str:
    taken = set(Audience.objects.filter(company=company, name__startswith=name)
                .values_list("name", flat=True))
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


def audience_from_template(*, company, key: str, user=None, audit: AuditContext | None = None) -> Audience:
    """A new audience from a template, saved and calculated. A calculation that fails is
    recorded on the audience (its `error`), which is returned all the same."""
    template = template_get(company=company, key=key)
    if template is None:
        raise AudienceRefused(f"There is no template {key!r}.", code="unknown_template")
    # Spend, orders and segments as of now: some templates read them, and so do the
    # audience's average CLTV and the builder it opens in.
    persona_facts_refresh(company=company)
    audience = audience_save(company=company, name=_free_name(company, template.name),
                             rules=template.rules_for(company), description=template.description,
                             template_key=template.key, user=user, audit=audit)
    try:
        audience = audience_refresh(audience=audience)
    except DomainError:
        audience.refresh_from_db()
    return audience
