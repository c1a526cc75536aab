"""A rule tree, validated, becomes one parameterised SQL condition over personas.

    {"type": "group", "match": "all" | "any", "negate": false, "children": [
        {"type": "condition", "trait": "bought_category", "operator": "within_days",
         "value": {"name": "Flower", "days": 30}},
        {"type": "condition", "trait": "sms_opt_in", "operator": "equals", "value": true}]}

Values only ever travel as bound parameters; trait keys and operators are looked up in the
catalog, so nothing a user typed is formatted into the SQL. Every condition is true or
false (never NULL), so NOT means "everyone the condition does not select".
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .traits import LINE_PROPERTIES, OPERATORS, PURCHASE_PROPERTIES, trait_get

MAX_DEPTH = 6
MAX_CONDITIONS = 100
MAX_LIST = 200
MAX_TEXT = 200
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RuleError(ValueError):
    """A tree that cannot be used; `path` points at the bad node, e.g.
    `children[1].children[0].value`."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path or 'rules'}: {message}")
        self.path = path or "rules"
        self.message = message


def empty_rules() -> dict:
    return {"type": "group", "match": "all", "negate": False, "children": []}


# --- validation ------------------------------------------------------------------------------

def rules_clean(tree) -> dict:
    """The tree, checked and normalised (values in canonical form), or RuleError."""
    counter = [0]
    return _clean_node(tree, "", 0, counter)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _clean_node(node, path: str, depth: int, counter: list[int]) -> dict:
    if not isinstance(node, dict):
        raise RuleError(path, "must be an object")
    kind = node.get("type")
    negate = node.get("negate", False)
    if not isinstance(negate, bool):
        raise RuleError(_join(path, "negate"), "must be true or false")
    if kind == "group":
        if depth >= MAX_DEPTH:
            raise RuleError(path, f"groups nest at most {MAX_DEPTH} deep")
        match = node.get("match", "all")
        if match not in ("all", "any"):
            raise RuleError(_join(path, "match"), "must be 'all' (AND) or 'any' (OR)")
        children = node.get("children", [])
        if not isinstance(children, list):
            raise RuleError(_join(path, "children"), "must be a list")
        return {"type": "group", "match": match, "negate": negate,
                "children": [_clean_node(child, _join(path, f"children[{i}]"), depth + 1, counter)
                             for i, child in enumerate(children)]}
    if kind == "condition":
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise RuleError(path, f"at most {MAX_CONDITIONS} conditions")
        return _clean_condition(node, path) | {"negate": negate}
    raise RuleError(_join(path, "type"), "must be 'group' or 'condition'")


def _clean_condition(node: dict, path: str) -> dict:
    key = node.get("trait")
    trait = trait_get(key) if isinstance(key, str) and not BAD_CHARACTERS.search(key) else None
    if trait is None:
        raise RuleError(_join(path, "trait"), f"unknown trait {key!r}")
    operator = node.get("operator")
    if operator not in OPERATORS[trait.type]:
        raise RuleError(_join(path, "operator"),
                        f"{operator!r} does not fit {trait.label} ({', '.join(OPERATORS[trait.type])})")
    value = _clean_value(trait.type, operator, node.get("value"), _join(path, "value"))
    return {"type": "condition", "trait": key, "operator": operator, "value": value}


BAD_CHARACTERS = re.compile(r"[\x00\ud800-\udfff]")  # NUL and lone surrogates: PostgreSQL refuses them


def _text(value, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleError(path, "must be some text")
    if BAD_CHARACTERS.search(value):
        raise RuleError(path, "contains a character that cannot be stored (NUL or a broken emoji)")
    if len(value) > MAX_TEXT:
        raise RuleError(path, f"at most {MAX_TEXT} characters")
    return value.strip()


def _number(value, path: str) -> str:
    if isinstance(value, bool):
        raise RuleError(path, "must be a number")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise RuleError(path, "must be a number") from None
    if not number.is_finite() or abs(number) >= Decimal("1e12"):
        raise RuleError(path, "must be a number below a trillion")
    if number.as_tuple().exponent < -6:
        raise RuleError(path, "at most 6 decimal places")
    return str(number)


def _int(value, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RuleError(path, f"must be a whole number from {low} to {high}")
    try:
        number = int(value)
    except ValueError:
        raise RuleError(path, f"must be a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise RuleError(path, f"must be a whole number from {low} to {high}")
    return number


def _date(value, path: str) -> str:
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise RuleError(path, "must be a date like 2026-01-31")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise RuleError(path, "must be a real date") from None
    if not 1900 <= day.year <= 2999:
        raise RuleError(path, "must be a date between 1900 and 2999")
    return value


def _list(value, path: str, item) -> list:
    if not isinstance(value, list) or not value:
        raise RuleError(path, "must be a non-empty list")
    if len(value) > MAX_LIST:
        raise RuleError(path, f"at most {MAX_LIST} values")
    return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _pair(value, path: str, item) -> list:
    if not isinstance(value, list) or len(value) != 2:
        raise RuleError(path, "must be two values: from and to")
    low, high = item(value[0], f"{path}[0]"), item(value[1], f"{path}[1]")
    if (Decimal(low) if item is _number else low) > (Decimal(high) if item is _number else high):
        raise RuleError(path, "the first value must not be after the second")
    return [low, high]


def _clean_value(kind: str, operator: str, value, path: str):
    if operator in ("is_set", "is_not_set", "this_month"):
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise RuleError(path, "must be true or false")
        return value
    if kind in ("text", "choice"):
        return _list(value, path, _text) if operator == "in" else _text(value, path)
    if kind == "number":
        return _pair(value, path, _number) if operator == "between" else _number(value, path)
    if kind == "date":
        if operator == "within_days":
            return _int(value, path, 0, 36500)
        return _pair(value, path, _date) if operator == "between" else _date(value, path)
    if kind == "month":
        month = lambda v, p: _int(v, p, 1, 12)  # noqa: E731
        return _list(value, path, month) if operator == "in" else month(value, path)
    if kind == "store":
        return _list(value, path, lambda v, p: _int(v, p, 1, 2**62))
    if kind == "audience":
        return _int(value, path, 1, 2**62)
    if kind == "history":
        if not isinstance(value, dict):
            raise RuleError(path, "must be an object with name (and days)")
        cleaned = {"name": _text(value.get("name"), _join(path, "name"))}
        if operator == "within_days":
            cleaned["days"] = _int(value.get("days"), _join(path, "days"), 1, 36500)
        return cleaned
    if kind == "event":
        return _clean_event(value, path)
    raise RuleError(path, f"unsupported value type {kind}")  # pragma: no cover - catalog is fixed


def _clean_event(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise RuleError(path, "must be an object with filters, within_days and at_least")
    filters = value.get("filters", [])
    if not isinstance(filters, list):
        raise RuleError(_join(path, "filters"), "must be a list")
    cleaned = []
    for i, item in enumerate(filters):
        where = _join(path, f"filters[{i}]")
        if not isinstance(item, dict) or not isinstance(item.get("property"), str) \
                or item["property"] not in PURCHASE_PROPERTIES:
            raise RuleError(_join(where, "property"),
                            f"must be one of {', '.join(PURCHASE_PROPERTIES)}")
        _, kind, _ = PURCHASE_PROPERTIES[item["property"]]
        operator = item.get("operator")
        allowed = [op for op in OPERATORS[kind] if op not in ("is_set", "is_not_set")]
        if operator not in allowed:
            raise RuleError(_join(where, "operator"), f"{operator!r} does not fit {item['property']} "
                                                      f"({', '.join(allowed)})")
        cleaned.append({"property": item["property"], "operator": operator,
                        "value": _clean_value(kind, operator, item.get("value"), _join(where, "value"))})
    days = value.get("within_days")
    return {"filters": cleaned,
            "within_days": None if days in (None, "") else _int(days, _join(path, "within_days"), 1, 36500),
            "at_least": _int(value.get("at_least", 1), _join(path, "at_least"), 1, 100000)}


def audiences_referenced(tree: dict) -> set[int]:
    """The audiences a (clean) tree's membership conditions name."""
    found = set()

    def walk(node):
        if node["type"] == "group":
            for child in node["children"]:
                walk(child)
        elif node["trait"] == "audience":
            found.add(node["value"])

    walk(tree)
    return found


# --- compiling -----------------------------------------------------------------------------------

@dataclass
class Compiled:
    where: str  # over `p` (loyalty_persona) and `f` (audiences_personafacts, LEFT JOINed)
    params: dict = field(default_factory=dict)
    # LEFT JOINs of purchaser and purchase-facts sets (b1, b2, ...) that `where` tests.
    joins: list[str] = field(default_factory=list)

    def select(self, columns: str = "p.id") -> tuple[str, dict]:
        joins = "".join(f" {join}" for join in self.joins)
        return (f"SELECT {columns} FROM loyalty_persona p "
                f"LEFT JOIN audiences_personafacts f ON f.persona_id = p.id{joins} "
                f"WHERE p.company_id = %(company)s AND {self.where}", self.params)


class _Compiler:
    def __init__(self, *, company_id: int, tz: str, now: dt.datetime):
        self.zone = zoneinfo.ZoneInfo(tz)
        self.now = now
        self.today = now.astimezone(self.zone).date()
        self.params = {"company": company_id, "now": now, "today": self.today, "tz": tz}
        self.joins: list[str] = []

    def param(self, value) -> str:
        name = f"v{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def day_start(self, day: dt.date) -> str:
        return self.param(dt.datetime.combine(day, dt.time(), self.zone))

    # nodes
    def node(self, node: dict) -> str:
        """A node as a condition over p; a group's purchase-facts conditions become one set."""
        if _on_facts(node):
            return self.facts_set(self.inline(node))
        if node["type"] == "condition":
            return self.inline(node)
        on_facts = [child for child in node["children"] if _on_facts(child)]
        parts = [self.facts_set(self.inline({"type": "group", "match": node["match"], "children": on_facts}))
                 ] if on_facts else []
        parts += [self.node(child) for child in node["children"] if not _on_facts(child)]
        return self.group(node, parts)

    def inline(self, node: dict) -> str:
        """A node as a condition over p and f, as written."""
        if node["type"] == "group":
            return self.group(node, [self.inline(child) for child in node["children"]])
        sql = f"coalesce(({self.condition(node)}), false)"
        return f"(NOT {sql})" if node.get("negate") else sql

    @staticmethod
    def group(node: dict, parts: list[str]) -> str:
        joiner = " AND " if node["match"] == "all" else " OR "
        sql = f"({joiner.join(parts)})" if parts else "true"
        return f"(NOT {sql})" if node.get("negate") else sql

    # Conditions on purchase facts alone are answered by the facts rows where they differ
    # from what a customer with no facts row yet reads as (`missing`, worked out once), and
    # that set is LEFT JOINed: the join then holds the few customers the rule picks out
    # instead of every customer's facts, which made up half the time of a count.
    def facts_set(self, test: str) -> str:
        alias = f"b{len(self.joins) + 1}"
        missing = f"(SELECT {test} FROM (SELECT 1) one LEFT JOIN audiences_personafacts f ON false)"
        self.joins.append(
            f"LEFT JOIN (SELECT f.persona_id FROM audiences_personafacts f WHERE f.company_id = %(company)s "
            f"AND {test} IS DISTINCT FROM {missing}) {alias} ON {alias}.persona_id = p.id")
        return f"(({alias}.persona_id IS NOT NULL) <> {missing})"

    def condition(self, node: dict) -> str:
        trait = trait_get(node["trait"])
        op, value = node["operator"], node["value"]
        if trait.kind == "history":
            return self.history(trait, op, value)
        if trait.kind == "event":
            return self.purchase(value)
        if trait.kind == "audience":
            member = (f"p.id IN (SELECT m.persona_id FROM audiences_audiencemember m "
                      f"WHERE m.audience_id = {self.param(value)})")
            return member if op == "member_of" else f"NOT ({member})"
        if trait.kind == "stores_purchased":
            return self.stores_purchased(op, value)
        expr = trait.sql
        if trait.kind == "custom":
            expr = f"nullif(p.custom_traits ->> {self.param(trait.label)}::text, '')"
        return self.compare(expr, trait.type, op, value)

    def compare(self, expr: str, kind: str, op: str, value) -> str:
        if op == "is_set":
            return f"{expr} IS NOT NULL"
        if op == "is_not_set":
            return f"{expr} IS NULL"
        if kind == "bool":
            return expr if value else f"NOT {expr}"
        if kind in ("text", "choice"):
            lowered = f"lower({expr})"
            if op == "equals":
                return f"{lowered} = lower({self.param(value)}::text)"
            if op == "not_equals":
                return f"{lowered} IS DISTINCT FROM lower({self.param(value)}::text)"
            if op == "contains":
                return f"strpos({lowered}, lower({self.param(value)}::text)) > 0"
            if op == "starts_with":
                return f"starts_with({lowered}, lower({self.param(value)}::text))"
            if op == "in":
                return f"{lowered} = ANY({self.param([v.lower() for v in value])}::text[])"
        if kind == "number":
            if op == "between":
                return (f"{expr} BETWEEN {self.param(Decimal(value[0]))}::numeric "
                        f"AND {self.param(Decimal(value[1]))}::numeric")
            sql_op = {"equals": "=", "not_equals": "IS DISTINCT FROM", "gt": ">", "lt": "<"}[op]
            return f"{expr} {sql_op} {self.param(Decimal(value))}::numeric"
        if kind == "date":
            if op == "this_month":  # the calendar month now, in the company's time zone
                first = self.today.replace(day=1)
                following = (first + dt.timedelta(days=32)).replace(day=1)
                return (f"{expr} >= {self.day_start(first)}::timestamptz "
                        f"AND {expr} < {self.day_start(following)}::timestamptz")
            if op == "within_days":
                return f"{expr} >= {self.param(self.now - dt.timedelta(days=value))}::timestamptz"
            if op == "before":
                return f"{expr} < {self.day_start(dt.date.fromisoformat(value))}::timestamptz"
            if op == "after":
                after = dt.date.fromisoformat(value) + dt.timedelta(days=1)
                return f"{expr} >= {self.day_start(after)}::timestamptz"
            if op == "between":
                low = dt.date.fromisoformat(value[0])
                high = dt.date.fromisoformat(value[1]) + dt.timedelta(days=1)
                return (f"{expr} >= {self.day_start(low)}::timestamptz "
                        f"AND {expr} < {self.day_start(high)}::timestamptz")
        if kind == "month":
            if op == "this_month":
                return f"{expr} = {self.param(self.today.month)}::int"
            if op == "in":
                return f"{expr} = ANY({self.param(value)}::int[])"
            return f"{expr} = {self.param(value)}::int"
        if kind == "store":
            if op == "in":
                return f"{expr} = ANY({self.param(value)}::bigint[])"
            if op == "not_in":
                return f"NOT coalesce({expr} = ANY({self.param(value)}::bigint[]), false)"
        raise RuleError("", f"cannot compile {kind} {op}")  # pragma: no cover - validated before

    # History is matched against the set of the company's purchasers who ..., built once and
    # LEFT JOINed by persona id: EXISTS under OR / NOT would probe per customer, and an
    # "IN (subquery)" under OR keeps the whole scan of customers in one process, where a
    # join lets PostgreSQL's parallel workers share it.
    def purchaser_set(self, sql: str) -> str:
        alias = f"b{len(self.joins) + 1}"
        self.joins.append(f"LEFT JOIN ({sql}) {alias} ON {alias}.persona_id = p.id")
        return f"({alias}.persona_id IS NOT NULL)"

    def purchasers(self, where: str = "", lines: str = "") -> str:
        join = " JOIN loyalty_lineitem l ON l.transaction_id = t.id" if lines else ""
        return self.purchaser_set(
            f"SELECT DISTINCT t.persona_id FROM loyalty_transaction t{join} "
            f"WHERE t.company_id = %(company)s AND t.status = 'completed' AND t.persona_id IS NOT NULL"
            f"{where}{lines}")

    def stores_purchased(self, op: str, value) -> str:
        if op in ("is_set", "is_not_set"):
            bought = self.purchasers(" AND t.store_id IS NOT NULL")
            return bought if op == "is_set" else f"NOT {bought}"
        bought = self.purchasers(f" AND t.store_id = ANY({self.param(value)}::bigint[])")
        return bought if op == "in" else f"NOT {bought}"

    def history(self, trait, op: str, value: dict) -> str:
        window = ""
        if op == "within_days":
            cutoff = self.now - dt.timedelta(days=value["days"])
            window = f" AND t.occurred_at >= {self.param(cutoff)}::timestamptz"
        name = self.param(value["name"])
        return self.purchasers(window, f" AND lower({trait.sql}) = lower({name}::text)")

    def purchase(self, value: dict) -> str:
        where = []
        if value["within_days"]:
            cutoff = self.now - dt.timedelta(days=value["within_days"])
            where.append(f"t.occurred_at >= {self.param(cutoff)}::timestamptz")
        for item in value["filters"]:
            _, kind, expr = PURCHASE_PROPERTIES[item["property"]]
            test = f"coalesce(({self.compare(expr, kind, item['operator'], item['value'])}), false)"
            if item["property"] in LINE_PROPERTIES:
                test = f"EXISTS (SELECT 1 FROM loyalty_lineitem l WHERE l.transaction_id = t.id AND {test})"
            where.append(test)
        extra = "".join(f" AND {w}" for w in where)
        if value["at_least"] <= 1:
            return self.purchasers(extra)
        return self.purchaser_set(
            f"SELECT t.persona_id FROM loyalty_transaction t WHERE t.company_id = %(company)s "
            f"AND t.status = 'completed' AND t.persona_id IS NOT NULL{extra} "
            f"GROUP BY t.persona_id HAVING count(*) >= {self.param(value['at_least'])}::int")


def _on_facts(node: dict) -> bool:
    if node["type"] == "group":
        return bool(node["children"]) and all(_on_facts(child) for child in node["children"])
    return trait_get(node["trait"]).on_facts


def rules_compile(tree: dict, *, company_id: int, tz: str, now: dt.datetime | None = None) -> Compiled:
    """Compile a tree (cleaned here, so RuleError on a bad one)."""
    from django.utils import timezone

    tree = rules_clean(tree)
    compiler = _Compiler(company_id=company_id, tz=tz, now=now or timezone.now())
    where = compiler.node(tree)
    return Compiled(where=where, params=compiler.params, joins=compiler.joins)
