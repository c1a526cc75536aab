"""The trait catalog: every customer trait a marketer can build an audience from, as they
see it (group, label, value type, operators) and how it becomes SQL.

Each trait's `sql` is an expression over `p` (loyalty_persona) and `f` (its PersonaFacts
row, LEFT JOINed: NULL for a customer never computed) that the compiler compares with
bound parameters. Traits that look at purchase history ("bought Flower in the last 30
days", the Purchase event) have their own compilers in compiler.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Value types and the operators that fit them.
OPERATORS = {
    "bool": ("equals",),
    "text": ("equals", "not_equals", "contains", "starts_with", "in", "is_set", "is_not_set"),
    "choice": ("equals", "not_equals", "in", "is_set", "is_not_set"),
    "number": ("equals", "not_equals", "gt", "lt", "between", "is_set", "is_not_set"),
    "date": ("within_days", "this_month", "before", "after", "between", "is_set", "is_not_set"),
    "month": ("equals", "in", "this_month"),
    "store": ("in", "not_in", "is_set", "is_not_set"),
    "history": ("within_days", "ever"),
    "event": ("performed",),
    "audience": ("member_of", "not_member_of"),
}
OPERATOR_LABELS = {
    "equals": "is", "not_equals": "is not", "contains": "contains", "starts_with": "starts with",
    "in": "is any of", "not_in": "is none of", "gt": "greater than", "lt": "less than",
    "between": "between", "within_days": "within the last N days", "before": "before", "after": "after",
    "is_set": "is set", "is_not_set": "is not set", "this_month": "is this month", "ever": "ever",
    "performed": "performed", "member_of": "is in", "not_member_of": "is not in",
}
GROUPS = ("Contact", "Location", "Purchase & discount", "Performed event", "Loyalty", "Computed",
          "Custom brand traits", "Audience membership")

SEGMENTS = ("champion", "loyal", "new", "promising", "needs_attention", "at_risk", "lost")
SEGMENT_LABELS = {"champion": "Champions", "loyal": "Loyal", "new": "New", "promising": "Promising",
                  "needs_attention": "Needs attention", "at_risk": "At risk", "lost": "Lost"}


@dataclass(frozen=True)
class Trait:
    key: str
    label: str
    group: str
    type: str
    sql: str = ""  # the expression, for column-like traits
    kind: str = "column"  # column | history | event | stores_purchased | audience | custom
    datetime: bool = False  # for dates: a timestamp (compared in the company's time zone)
    choices: tuple = field(default_factory=tuple)  # fixed values offered for picking
    suggest: str = ""  # where the builder finds values: categories, brands, products, tiers...
    help: str = ""

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS[self.type]

    @property
    def on_facts(self) -> bool:
        """Read from the purchase facts (`f`) alone, nothing on the persona row (`p`)."""
        return self.kind == "column" and "f." in self.sql and "p." not in self.sql


_DAYS_SINCE = "(%(today)s::date - (f.last_purchase_at AT TIME ZONE %(tz)s::text)::date)"

TRAITS: dict[str, Trait] = {t.key: t for t in (
    # Contact
    Trait("has_email", "Has email", "Contact", "bool", "(p.email <> '')"),
    Trait("has_phone", "Has phone", "Contact", "bool", "(p.phone <> '')"),
    Trait("sms_opt_in", "SMS opt-in", "Contact", "bool", "p.sms_opt_in"),
    Trait("email_opt_in", "Email opt-in", "Contact", "bool", "p.email_opt_in"),
    Trait("is_member", "Loyalty member", "Contact", "bool", "p.is_member"),
    Trait("enrolled_at", "Enrolled", "Contact", "date", "p.enrolled_at", datetime=True),
    Trait("birthday_month", "Birthday month", "Contact", "month",
          "extract(month FROM p.birth_date)::int"),
    Trait("age", "Age", "Contact", "number",
          "extract(year FROM age(%(today)s::date, p.birth_date))::int"),
    Trait("market", "Market (state/province)", "Contact", "choice", "nullif(p.market, '')",
          suggest="markets"),
    Trait("sourced_from", "Sourced from", "Contact", "choice",
          "(SELECT s.name FROM loyalty_source s WHERE s.id = p.sourced_from_id)", suggest="sources"),
    Trait("first_name", "First name", "Contact", "text", "nullif(p.first_name, '')"),
    Trait("email", "Email", "Contact", "text", "nullif(p.email, '')"),
    Trait("created_at", "Customer since", "Contact", "date", "p.created_at", datetime=True),
    # Location
    Trait("favourite_store", "Favourite store", "Location", "store", "p.favourite_store_id",
          suggest="stores"),
    Trait("stores_purchased_at", "Stores purchased at", "Location", "store", kind="stores_purchased",
          suggest="stores", help="Any completed purchase at one of these stores."),
    # Purchase & discount
    Trait("lifetime_spend", "Lifetime spend", "Purchase & discount", "number",
          "coalesce(f.lifetime_spend, 0)"),
    Trait("order_count", "Order count", "Purchase & discount", "number", "coalesce(f.order_count, 0)"),
    Trait("average_order_value", "Average order value", "Purchase & discount", "number",
          "round(f.lifetime_spend / nullif(f.order_count, 0), 2)"),
    Trait("first_purchase_at", "First purchase", "Purchase & discount", "date", "f.first_purchase_at",
          datetime=True),
    Trait("last_purchase_at", "Last purchase", "Purchase & discount", "date", "f.last_purchase_at",
          datetime=True),
    Trait("bought_category", "Bought a category", "Purchase & discount", "history", "l.category",
          kind="history", suggest="categories"),
    Trait("bought_brand", "Bought a brand", "Purchase & discount", "history", "l.brand",
          kind="history", suggest="brands"),
    Trait("bought_product", "Bought a product", "Purchase & discount", "history", "l.product",
          kind="history", suggest="products"),
    Trait("used_loyalty_discount", "Used a loyalty discount", "Purchase & discount", "bool",
          "coalesce(f.used_loyalty_discount, false)"),
    # Performed event
    Trait("purchase", "Purchase", "Performed event", "event", kind="event",
          help="Purchases matching the filters, within a time window, at least N times."),
    # Loyalty
    Trait("points_balance", "Points balance", "Loyalty", "number", "p.points_balance"),
    Trait("lifetime_points", "Lifetime points", "Loyalty", "number", "p.lifetime_points"),
    Trait("tier", "Tier", "Loyalty", "choice", "nullif(p.tier, '')", suggest="tiers"),
    # Computed
    Trait("days_since_last_purchase", "Days since last purchase", "Computed", "number", _DAYS_SINCE),
    Trait("cltv", "Customer lifetime value", "Computed", "number", "coalesce(f.lifetime_spend, 0)",
          help="Everything they have spent with you, completed sales only."),
    Trait("segment", "Recency/frequency/monetary segment", "Computed", "choice", "nullif(f.segment, '')",
          choices=SEGMENTS),
    # Audience membership
    Trait("audience", "Audience", "Audience membership", "audience", kind="audience", suggest="audiences"),
)}

# Properties of the Purchase event a marketer can filter on.
PURCHASE_PROPERTIES = {
    "fulfillment": ("Fulfillment type", "text", "t.fulfillment"),
    "store": ("Store", "store", "t.store_id"),
    "amount": ("Amount", "number", "t.total"),
    "category": ("Category", "text", "l.category"),
    "brand": ("Brand", "text", "l.brand"),
    "product": ("Product", "text", "l.product"),
}
LINE_PROPERTIES = ("category", "brand", "product")

CUSTOM_PREFIX = "custom:"


def trait_get(key: str) -> Trait | None:
    """The catalog's trait, or a custom brand trait (`custom:<name>`)."""
    if key.startswith(CUSTOM_PREFIX) and len(key) > len(CUSTOM_PREFIX):
        name = key[len(CUSTOM_PREFIX):]
        return Trait(key, name, "Custom brand traits", "text", kind="custom", suggest="custom")
    return TRAITS.get(key)
