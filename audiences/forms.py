"""The builder's form: the rule tree travels as plain form fields, one set per node, and
the server turns them back into a tree (as typed, not yet validated), applies the button
that was pressed, and renders the tree again.

Nodes are named by their position: "0" is the root group, "0.2" its third child,
"0.2.0" the first child of that. Every node posts

    node=<path>  <path>:type=group|condition  <path>:negate=1 (when ticked)

groups add `<path>:match=all|any`; conditions add `<path>:trait`, `<path>:op`, the trait
and operator they were rendered with (`<path>:was`, `<path>:wasop`, so a new trait or
operator starts from a fitting value) and their value fields: `<path>:value`,
`<path>:value2` (the second of a pair), `<path>:values` (ticked boxes), `<path>:name` and
`<path>:days` (history), `<path>:within`, `<path>:atleast` and `<path>:filter=<i>` with
`<path>:f<i>:prop|op|value|value2|values` (the Purchase event's filters).

Scripts may post the tree itself instead, as JSON in `rules`.
"""

from __future__ import annotations

import calendar
import json
import re

from django import forms
from django.utils import timezone

from .compiler import MAX_DEPTH, empty_rules
from .traits import GROUPS, OPERATOR_LABELS, OPERATORS, PURCHASE_PROPERTIES, SEGMENT_LABELS, TRAITS, trait_get

ROOT = "0"
PATH_RE = re.compile(r"^0(\.\d{1,3}){0,8}$")
MAX_FORM_NODES = 300
NO_VALUE_OPS = ("is_set", "is_not_set", "this_month")
# What a new condition starts with, by value type.
DEFAULT_OPS = {"bool": "equals", "text": "equals", "choice": "equals", "number": "gt", "date": "within_days",
               "month": "this_month", "store": "in", "history": "ever", "event": "performed",
               "audience": "member_of"}
FILTER_OPS = {kind: tuple(op for op in OPERATORS[kind] if op not in ("is_set", "is_not_set"))
              for kind in ("text", "store", "number")}
DEFAULT_FILTER_OPS = {"text": "equals", "store": "in", "number": "gt"}
MONTHS = [(str(i), calendar.month_name[i]) for i in range(1, 13)]
BOOL_CHOICES = [("true", "yes"), ("false", "no")]


class AudienceForm(forms.Form):
    name = forms.CharField(max_length=120, label="Name",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. Flower buyers, last 30 days",
                                                         "autocomplete": "off"}))
    description = forms.CharField(max_length=300, required=False, label="Description",
                                  widget=forms.TextInput(attrs={"placeholder": "What it is for (optional)"}))


# --- widgets --------------------------------------------------------------------------------------

def widget_for(kind: str, op: str, trait=None) -> str:
    """Which inputs a value of this type takes with this operator."""
    if op in NO_VALUE_OPS:
        return "none"
    if kind == "bool":
        return "bool"
    if kind in ("text", "choice"):
        if trait is not None and trait.choices:
            return "choice_checks" if op == "in" else "choice_select"
        return "text_list" if op == "in" else "text"
    if kind == "number":
        return "number_pair" if op == "between" else "number"
    if kind == "date":
        return {"within_days": "days", "between": "date_pair"}.get(op, "date")
    if kind == "month":
        return "month_checks" if op == "in" else "month"
    if kind == "store":
        return "store_checks"
    return kind  # history, event, audience


def default_value(kind: str, op: str, trait=None, *, audiences=()):
    widget = widget_for(kind, op, trait)
    if widget == "bool":
        return True
    if widget == "days":
        return "30"
    if widget == "month":
        return str(timezone.localdate().month)
    if widget in ("text_list", "choice_checks", "month_checks", "store_checks"):
        return []
    if widget in ("number_pair", "date_pair"):
        return ["", ""]
    if widget == "history":
        return {"name": "", "days": "30"} if op == "within_days" else {"name": ""}
    if widget == "event":
        return {"filters": [], "within_days": None, "at_least": 1}
    if widget == "audience":
        return str(audiences[0][0]) if audiences else ""
    if widget == "choice_select" and trait is not None:
        return trait.choices[0]
    return None if widget == "none" else ""


def _convert(kind: str, trait, old_op: str, new_op: str, value):
    """A value typed for one operator, carried over to another where it still makes sense."""
    old, new = widget_for(kind, old_op, trait), widget_for(kind, new_op, trait)
    if old == new:
        if new == "history":
            return {"name": value.get("name", ""), **({"days": value.get("days") or "30"}
                                                        if new_op == "within_days" else {})}
        return value
    single_to_list = {("text", "text_list"), ("choice_select", "choice_checks"), ("month", "month_checks")}
    if (old, new) in single_to_list:
        return [value] if value not in (None, "") else []
    if (new, old) in single_to_list:
        return value[0] if isinstance(value, list) and value else default_value(kind, new_op, trait)
    if (old, new) in (("number", "number_pair"), ("date", "date_pair")):
        return [value or "", ""]
    if (old, new) in (("number_pair", "number"), ("date_pair", "date")):
        return value[0] if isinstance(value, list) and value else ""
    return default_value(kind, new_op, trait)


# --- form fields -> tree -----------------------------------------------------------------------------

def _value_from_post(data, prefix: str, widget: str):
    get = lambda suffix: (data.get(f"{prefix}:{suffix}") or "").strip()  # noqa: E731
    if widget == "none":
        return None
    if widget == "bool":
        return {"true": True, "false": False}.get(get("value"))
    if widget == "text_list":
        return [part.strip() for part in get("value").split(",") if part.strip()]
    if widget in ("choice_checks", "month_checks", "store_checks"):
        return [v for v in data.getlist(f"{prefix}:values") if v]
    if widget in ("number_pair", "date_pair"):
        return [get("value"), get("value2")]
    return get("value")


def _filter_from_post(data, prefix: str) -> dict:
    prop, op = data.get(f"{prefix}:prop") or "", data.get(f"{prefix}:op") or ""
    if prop not in PURCHASE_PROPERTIES:
        return {"property": prop, "operator": op, "value": None}
    kind = PURCHASE_PROPERTIES[prop][1]
    was_prop, was_op = data.get(f"{prefix}:wasprop"), data.get(f"{prefix}:wasop") or op
    if was_prop != prop and (was_prop not in PURCHASE_PROPERTIES or PURCHASE_PROPERTIES[was_prop][1] != kind):
        op = DEFAULT_FILTER_OPS[kind]
        return {"property": prop, "operator": op, "value": default_value(kind, op)}
    if op not in FILTER_OPS[kind] or was_op not in FILTER_OPS[kind]:
        value = _value_from_post(data, prefix, widget_for(kind, op))
        return {"property": prop, "operator": op, "value": value}
    value = _value_from_post(data, prefix, widget_for(kind, was_op))
    return {"property": prop, "operator": op, "value": _convert(kind, None, was_op, op, value)}


def _condition_from_post(data, path: str, audiences) -> dict:
    key, op = data.get(f"{path}:trait") or "", data.get(f"{path}:op") or ""
    node = {"type": "condition", "trait": key, "operator": op, "value": None,
            "negate": data.get(f"{path}:negate") == "1"}
    trait = trait_get(key)
    if trait is None:
        return node
    if data.get(f"{path}:was") != key:  # a new trait: its own operator and a fitting value
        op = DEFAULT_OPS[trait.type]
        return node | {"operator": op, "value": default_value(trait.type, op, trait, audiences=audiences)}
    was_op = data.get(f"{path}:wasop") or op
    if op not in trait.operators or was_op not in trait.operators:
        return node | {"value": _value_from_post(data, path, widget_for(trait.type, op, trait))}
    widget = widget_for(trait.type, was_op, trait)
    if widget == "history":
        value = {"name": (data.get(f"{path}:name") or "").strip()}
        if was_op == "within_days":
            value["days"] = (data.get(f"{path}:days") or "").strip()
    elif widget == "event":
        within = (data.get(f"{path}:within") or "").strip()
        value = {"filters": [_filter_from_post(data, f"{path}:f{i}")
                             for i in data.getlist(f"{path}:filter")[:50] if i.isdigit()],
                 "within_days": within or None,
                 "at_least": (data.get(f"{path}:atleast") or "").strip() or 1}
    else:
        value = _value_from_post(data, path, widget)
    return node | {"value": _convert(trait.type, trait, was_op, op, value)}


def tree_from_post(data, *, audiences=()) -> dict:
    """The tree the form describes, as typed (values are still strings)."""
    nodes: dict[str, dict] = {}
    for path in data.getlist("node")[:MAX_FORM_NODES]:
        if path in nodes or not PATH_RE.match(path):
            continue
        parent_path = path.rpartition(".")[0]
        parent = nodes.get(parent_path)
        if path != ROOT and (parent is None or parent["type"] != "group"):
            continue  # an orphan: its group is gone
        if data.get(f"{path}:type") == "group":
            node = {"type": "group", "match": data.get(f"{path}:match") or "all",
                    "negate": data.get(f"{path}:negate") == "1", "children": []}
        else:
            node = _condition_from_post(data, path, audiences)
        nodes[path] = node
        if parent is not None:
            parent["children"].append(node)
    root = nodes.get(ROOT)
    return root if root is not None and root["type"] == "group" else empty_rules()


class RulesJsonError(ValueError):
    pass


def _scrub(value):
    """PostgreSQL takes neither NUL characters nor lone surrogates in text: drop them."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def tree_from_request(data, *, audiences=()) -> dict:
    """From the builder's fields, or from `rules` (JSON) when a script posts the tree."""
    if data.get("rules"):
        try:
            return _scrub(json.loads(data["rules"]))
        except ValueError:
            raise RulesJsonError("The rules are not valid JSON.") from None
    return _scrub(tree_from_post(data, audiences=audiences))


# --- buttons -----------------------------------------------------------------------------------------

def node_at(tree: dict, path: str):
    if not PATH_RE.match(path or ""):
        return None
    node = tree
    for part in path.split(".")[1:]:
        children = node.get("children") if isinstance(node, dict) else None
        if not isinstance(children, list) or int(part) >= len(children):
            return None
        node = children[int(part)]
    return node


def new_condition() -> dict:
    return {"type": "condition", "trait": "", "operator": "", "value": None, "negate": False}


def apply_action(tree: dict, action: str) -> tuple[dict, str | None]:
    """Apply a builder button (`add_condition:0.1`, `add_group:0`, `remove:0.1.2`,
    `add_filter:0.3`, `remove_filter:0.3:1`). Returns the tree and the path of the node
    to focus (a new condition), if any."""
    verb, _, arg = (action or "").partition(":")
    path, _, index = arg.partition(":")
    node = node_at(tree, path)
    if node is None or not isinstance(node, dict):
        return tree, None
    is_group = node.get("type") == "group" and isinstance(node.get("children"), list)
    depth = path.count(".")
    if verb == "add_condition" and is_group:
        node["children"].append(new_condition())
        return tree, f"{path}.{len(node['children']) - 1}"
    if verb == "add_group" and is_group and depth + 1 < MAX_DEPTH:
        node["children"].append({"type": "group", "match": "all", "negate": False,
                                 "children": [new_condition()]})
        return tree, f"{path}.{len(node['children']) - 1}.0"
    if verb == "remove" and path != ROOT:
        parent = node_at(tree, path.rpartition(".")[0])
        del parent["children"][int(path.rpartition(".")[2])]
        return tree, None
    value = node.get("value")
    if node.get("trait") == "purchase" and isinstance(value, dict) and isinstance(value.get("filters"), list):
        if verb == "add_filter":
            value["filters"].append({"property": "fulfillment", "operator": "equals", "value": ""})
        elif verb == "remove_filter" and index.isdigit() and int(index) < len(value["filters"]):
            del value["filters"][int(index)]
    return tree, None


# --- errors in plain words -----------------------------------------------------------------------------

FRIENDLIER = {
    "must be a non-empty list": "needs at least one choice",
    "unknown trait ''": "pick a trait",
    "unknown trait None": "pick a trait",
    "must be some text": "must not be empty",
    f"must be a whole number from 1 to {2 ** 62}": "needs a choice",  # an audience or store id
}
PART_WORDS = {"trait": "trait", "operator": "operator", "value": "value", "negate": "NOT", "match": "match",
              "type": "type", "children": "contents", "name": "name", "days": "days",
              "within_days": "days (within the last)", "at_least": "times (at least)",
              "property": "property"}


def node_labels(tree) -> dict[str, str]:
    """Each node's name as the builder shows it: "Condition 2", "Group 1"."""
    labels, counts = {ROOT: "Rules"}, {"condition": 0, "group": 0}

    def walk(node, path):
        children = node.get("children") if isinstance(node, dict) else None
        for i, child in enumerate(children if isinstance(children, list) else []):
            kind = "group" if isinstance(child, dict) and child.get("type") == "group" else "condition"
            counts[kind] += 1
            labels[f"{path}.{i}"] = f"{kind.title()} {counts[kind]}"
            walk(child, f"{path}.{i}")

    walk(tree, ROOT)
    return labels


def split_rule_path(rule_path: str) -> tuple[str, str]:
    """`children[1].children[0].value` -> ("0.1.0", "value")."""
    path, rest = ROOT, "" if rule_path in ("", "rules") else rule_path
    while match := re.match(r"children\[(\d+)\]\.?", rest):
        path, rest = f"{path}.{match[1]}", rest[match.end():]
    return path, rest


def _pair_op(node, rest: str) -> bool:
    """Whether `rest` (e.g. value[1] or value.filters[0].value[1]) is one of a between pair."""
    if not isinstance(node, dict):
        return False
    if rest.startswith("value.filters["):
        value = node.get("value") if isinstance(node.get("value"), dict) else {}
        filters = value.get("filters") if isinstance(value.get("filters"), list) else []
        index = int(re.match(r"value\.filters\[(\d+)\]", rest)[1])
        item = filters[index] if index < len(filters) else {}
        return isinstance(item, dict) and item.get("operator") == "between"
    return node.get("operator") == "between"


def _index_words(index: str, pair: bool) -> str:
    return ("from value", "to value")[int(index)] if pair and int(index) < 2 else f"value {int(index) + 1}"


def _words(rest: str, pair: bool) -> str:
    """`value.filters[0].value[1]` -> "filter 1 to value"; `value.days` -> "days"."""
    match = re.match(r"^value\.filters\[(\d+)\](?:\.(\w+)(?:\[(\d+)\])?)?$", rest)
    if match:
        label = f"filter {int(match[1]) + 1}"
        field, index = match[2], match[3]
        if field is None:
            return label
        if field == "value" and index is not None:
            return f"{label} {_index_words(index, pair)}"
        return f"{label} {PART_WORDS.get(field, field)}"
    match = re.match(r"^value\.(\w+)$", rest)
    if match:
        return PART_WORDS.get(match[1], match[1])
    match = re.match(r"^value\[(\d+)\]$", rest)
    if match:
        return _index_words(match[1], pair)
    return PART_WORDS.get(rest, rest)


def describe_error(tree, rule_path: str, message: str) -> tuple[str, str]:
    """The node path the error belongs to, and the error in plain words:
    ("0.2", "Condition 2: value must be a number")."""
    path, rest = split_rule_path(rule_path)
    label = node_labels(tree).get(path, "Rules")
    message = FRIENDLIER.get(message, message)
    node = node_at(tree, path) if isinstance(tree, dict) else None
    subject = _words(rest, _pair_op(node, rest)) if rest else ""
    if not message.startswith(("must", "needs", "at most", "'")):
        subject = ""  # "no store 7 in this company", "pick a trait": the message says it all
    return path, f"{label}: {subject + ' ' if subject else ''}{message}"


def refused_parts(exc) -> tuple[str, str]:
    """An AudienceRefused's rule path and its message without the path in front."""
    rule_path = exc.extra.get("path", "rules")
    message = exc.message
    if message.startswith(f"{rule_path}: "):
        message = message[len(rule_path) + 2:]
    return rule_path, message


# --- tree -> what the template draws -------------------------------------------------------------------

def trait_groups(custom_keys: list[str], extra_custom: set[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    grouped = {group: [] for group in GROUPS}
    for trait in TRAITS.values():
        grouped[trait.group].append((trait.key, trait.label))
    customs = list(custom_keys) + sorted(extra_custom - set(custom_keys))
    grouped["Custom brand traits"] = [(f"custom:{key}", key) for key in customs]
    return [(group, options) for group, options in grouped.items() if options]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class EditorBuilder:
    """Turns a tree (as typed or as saved) into nested dicts for the templates, collecting
    the suggestion lists the value inputs point at."""

    def __init__(self, *, suggest, stores, audiences, error_path: str = "", error: str = "",
                 new_path: str | None = None):
        self.suggest = suggest  # suggest(kind, key="") -> list[str]
        self.stores = [(str(pk), name) for pk, name in stores]
        self.audiences = [(str(pk), name) for pk, name in audiences]
        self.error_path, self.error, self.new_path = error_path, error, new_path
        self.datalists: dict[str, list[tuple[str, str]]] = {}
        self.custom_ids: dict[str, str] = {}
        self.customs_in_tree: set[str] = set()
        self.counts = {"condition": 0, "group": 0}

    def datalist(self, kind: str, key: str = "") -> str:
        if kind == "custom":
            dom = self.custom_ids.setdefault(key, f"dl-custom-{len(self.custom_ids) + 1}")
        else:
            dom = f"dl-{kind}"
        if dom not in self.datalists:
            if kind == "segments":
                self.datalists[dom] = list(SEGMENT_LABELS.items())
            else:
                self.datalists[dom] = [(v, "") for v in self.suggest(kind, key)]
        return dom

    def build(self, tree) -> dict:
        if not isinstance(tree, dict) or tree.get("type") != "group":
            tree = empty_rules()
        return self.group(tree, ROOT, 0)

    def group(self, node: dict, path: str, depth: int) -> dict:
        children = node.get("children") if isinstance(node.get("children"), list) else []
        view = {"kind": "group", "path": path, "dom": "n" + path.replace(".", "-"), "depth": depth,
                "is_root": path == ROOT, "match": node.get("match", "all"),
                "negate": node.get("negate") is True,
                "can_nest": depth + 1 < MAX_DEPTH, "error": self.error if path == self.error_path else ""}
        if path != ROOT:
            self.counts["group"] += 1
            view["number"] = self.counts["group"]
        view["children"] = []
        for i, child in enumerate(children):
            child_path = f"{path}.{i}"
            if isinstance(child, dict) and child.get("type") == "group":
                view["children"].append(self.group(child, child_path, depth + 1))
            else:
                view["children"].append(self.condition(child if isinstance(child, dict) else {}, child_path))
        return view

    def value_view(self, *, prefix: str, dom: str, label: str, kind: str, op: str, value, trait=None,
                   suggest: str = "", suggest_key: str = "") -> dict:
        widget = widget_for(kind, op, trait)
        view = {"prefix": prefix, "dom": dom, "label": label, "widget": widget, "value": "", "value2": "",
                "selected": set(), "choices": [], "datalist": ""}
        if widget in ("number_pair", "date_pair"):
            pair = value if isinstance(value, list | tuple) else [value, ""]
            view["value"] = _text(pair[0] if pair else "")
            view["value2"] = _text(pair[1] if len(pair) > 1 else "")
        elif widget in ("text_list", "choice_checks", "month_checks", "store_checks"):
            items = value if isinstance(value, list | tuple) else ([] if value in (None, "") else [value])
            view["selected"] = {_text(v) for v in items}
            view["value"] = ", ".join(_text(v) for v in items)
        elif widget not in ("history", "event"):
            view["value"] = _text(value)
        if widget == "bool":
            view["choices"] = BOOL_CHOICES
        elif widget in ("choice_select", "choice_checks") and trait is not None:
            view["choices"] = [(c, SEGMENT_LABELS.get(c, c)) for c in trait.choices]
        elif widget in ("month", "month_checks"):
            view["choices"] = MONTHS
        elif widget == "store_checks":
            view["choices"] = self.stores
        elif widget == "audience":
            view["choices"] = self.audiences
        if widget in ("text", "text_list", "history") and suggest:
            view["datalist"] = self.datalist(suggest, suggest_key)
        return view

    def condition(self, node: dict, path: str) -> dict:
        self.counts["condition"] += 1
        number = self.counts["condition"]
        key = node.get("trait") if isinstance(node.get("trait"), str) else ""
        trait = trait_get(key)
        op = node.get("operator") if isinstance(node.get("operator"), str) else ""
        dom = "n" + path.replace(".", "-")
        view = {"kind": "condition", "path": path, "dom": dom, "number": number, "trait_key": key,
                "trait": trait, "op": op, "negate": node.get("negate") is True, "new": path == self.new_path,
                "error": self.error if self.error_path == path else "", "operators": []}
        if key.startswith("custom:") and trait is not None:
            self.customs_in_tree.add(trait.label)
        if trait is None:
            return view
        view["operators"] = [(o, OPERATOR_LABELS[o]) for o in trait.operators]
        value = node.get("value")
        suggest_key = trait.label if trait.kind == "custom" else ""
        view["value"] = self.value_view(prefix=path, dom=dom, label=f"Condition {number}", kind=trait.type,
                                        op=op, value=value, trait=trait, suggest=trait.suggest,
                                        suggest_key=suggest_key)
        if trait.type == "history":
            value = value if isinstance(value, dict) else {}
            view["name"], view["days"] = _text(value.get("name")), _text(value.get("days"))
            view["name_label"] = {"brands": "Brand", "products": "Product"}.get(trait.suggest, "Category")
        if trait.type == "event":
            view["event"] = self.event(value if isinstance(value, dict) else {}, path, dom, number)
        return view

    def event(self, value: dict, path: str, dom: str, number: int) -> dict:
        filters = []
        for i, item in enumerate(value.get("filters") if isinstance(value.get("filters"), list) else []):
            item = item if isinstance(item, dict) else {}
            prop = item.get("property") if isinstance(item.get("property"), str) else ""
            op = item.get("operator") if isinstance(item.get("operator"), str) else ""
            view = {"index": i, "prefix": f"{path}:f{i}", "prop": prop, "op": op, "operators": [],
                    "value": None}
            if prop in PURCHASE_PROPERTIES:
                kind = PURCHASE_PROPERTIES[prop][1]
                suggest = {"fulfillment": "fulfillment", "category": "categories", "brand": "brands",
                           "product": "products"}.get(prop, "")
                view["operators"] = [(o, OPERATOR_LABELS[o]) for o in FILTER_OPS[kind]]
                view["value"] = self.value_view(prefix=f"{path}:f{i}", dom=f"{dom}-f{i}",
                                                label=f"Condition {number} filter {i + 1}", kind=kind, op=op,
                                                value=item.get("value"), suggest=suggest)
            filters.append(view)
        return {"filters": filters, "within": _text(value.get("within_days")),
                "at_least": _text(value.get("at_least", 1)),
                "properties": [(k, label) for k, (label, _, _) in PURCHASE_PROPERTIES.items()]}
