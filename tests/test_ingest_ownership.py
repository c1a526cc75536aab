"""Loyalty owns its tables: no module outside `loyalty/` writes them in SQL. Customers,
sales, line items, payments and points from bulk sources go through
`loyalty.services.ingest`; other apps call loyalty's services."""

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
