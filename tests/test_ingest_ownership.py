"""Loyalty owns its tables: no module outside `loyalty/` writes them in SQL. Customers,
sales, line items, payments and points from bulk sources go through
`loyalty.services.ingest`; other apps call loyalty's services."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = {"loyalty", "tests", "bench", "migrations", ".venv", "var", "node_modules"}
WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE(?:\s+TABLE)?)\s+\"?(loyalty_\w+)",
                   re.IGNORECASE)


def _python_files():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if not SKIPPED.intersection(parts[:-1]):
            yield path


def loyalty_writes_outside_loyalty() -> list[str]:
    found = []
    for path in _python_files():
        text = path.read_text(encoding="utf-8")
        for match in WRITE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: {match.group(1).upper()} {match.group(2)}")
    return found


def test_the_scan_sees_a_write_split_over_lines(tmp_path):
    sql = 'SQL = """\nINSERT INTO\n    loyalty_persona (id) VALUES (1)\n"""\n'
    assert [m.group(2) for m in WRITE.finditer(sql)] == ["loyalty_persona"]
    assert not list(WRITE.finditer("SELECT id FROM loyalty_persona FOR UPDATE"))


def test_no_module_outside_loyalty_writes_loyalty_tables():
    found = loyalty_writes_outside_loyalty()
    assert not found, "SQL writing loyalty's tables outside loyalty/ (use loyalty.services.ingest):\n" + \
        "\n".join(found)


# -- ORM writes of loyalty's models ----------------------------------------------------------

ORM_SCANNED = ("integrations",)
ORM_WRITES = frozenset({"create", "get_or_create", "update_or_create", "bulk_create", "bulk_update",
                        "update", "delete"})


def _loyalty_model_names(tree: ast.AST) -> set[str]:
    """The names a module binds to loyalty's models (`from loyalty.models import X as Y`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "loyalty.models":
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _manager_of(node: ast.AST) -> str | None:
    """The model name a call chain starts from when it goes through `Model.objects`."""
    while isinstance(node, ast.Attribute | ast.Call):
        if isinstance(node, ast.Attribute) and node.attr == "objects" and isinstance(node.value, ast.Name):
            return node.value.id
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def loyalty_orm_writes(text: str) -> list[tuple[int, str]]:
    """(line, "Model.method") of each `Model.objects...<write>(...)` of a loyalty model."""
    tree = ast.parse(text)
    models = _loyalty_model_names(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ORM_WRITES):
            model = _manager_of(node.func.value)
            if model in models:
                found.append((node.lineno, f"{model}.{node.func.attr}"))
    return sorted(found)


def loyalty_orm_writes_outside_loyalty() -> list[str]:
    found = []
    for app in ORM_SCANNED:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts:
                continue
            for line, write in loyalty_orm_writes(path.read_text(encoding="utf-8")):
                found.append(f"{path.relative_to(ROOT)}:{line}: {write}")
    return found


def test_the_orm_scan_sees_writes_of_loyalty_models_only():
    source = (
        "from loyalty.models import PersonaIdentity, Source as LoyaltySource\n"
        "from .models import SyncRun\n"
        "PersonaIdentity.objects.get_or_create(source_id=1, external_id='7')\n"
        "LoyaltySource.objects.filter(\n    pk=1,\n).update(name='x')\n"
        "PersonaIdentity.objects.filter(persona=p).exists()\n"
        "SyncRun.objects.filter(pk=1).update(state='failed')\n"
        "PersonaIdentity.objects.filter(pk=1).first()\n"
    )
    assert loyalty_orm_writes(source) == [(3, "PersonaIdentity.get_or_create"), (4, "LoyaltySource.update")]


def test_integrations_write_loyalty_models_only_through_loyalty_services():
    found = loyalty_orm_writes_outside_loyalty()
    assert not found, "ORM writes of loyalty's models in integrations/ (call a loyalty service):\n" + \
        "\n".join(found)
