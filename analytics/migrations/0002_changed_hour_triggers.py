"""Triggers that mark when sales change, whatever writes them.

Sales are written by the POS API, report imports (set-wise SQL), Cova syncs, purges,
store mappings and the admin; a trigger per statement is the one place that sees them
all. Each marks the (company, hour) of every sale it touches, in `ChangedHour`, and
`analytics.services.rollup_refresh` recalculates the local days of those hours.
Statement-level triggers with transition tables: one small INSERT per statement,
whatever its size.
"""

from django.db import migrations

HOUR = "date_trunc('hour', t.occurred_at)"

# Sales themselves: the day they were on before and the day they are on now.
SALES_ROWS = f"""
    INSERT INTO analytics_changedhour (company_id, hour)
    SELECT DISTINCT t.company_id, {HOUR} FROM {{rows}} t;"""

# Rows that belong to a sale: its line items, the points it earned, rewards redeemed on it.
CHILD_ROWS = f"""
    INSERT INTO analytics_changedhour (company_id, hour)
    SELECT DISTINCT t.company_id, {HOUR}
    FROM (SELECT DISTINCT transaction_id FROM {{rows}} WHERE transaction_id IS NOT NULL) r
    JOIN loyalty_transaction t ON t.id = r.transaction_id;"""

# A customer whose enrolment moved: the hours of their sales whose "bought as a member"
# flips. A row trigger, and only when those two columns change: persona rows are updated
# in bulk for other reasons (balances, last purchase) and must not pay for it.
PERSONA_ROW = f"""
    INSERT INTO analytics_changedhour (company_id, hour)
    SELECT DISTINCT t.company_id, {HOUR}
    FROM loyalty_transaction t
    WHERE t.persona_id = NEW.id
      AND coalesce(OLD.is_member AND OLD.enrolled_at <= t.occurred_at, false)
          IS DISTINCT FROM coalesce(NEW.is_member AND NEW.enrolled_at <= t.occurred_at, false);"""


def function(name: str, body: str) -> str:
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN{body}\n    RETURN NULL;\nEND $$;")


def trigger(name: str, table: str, event: str, referencing: str, fn: str) -> str:
    return (f"CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} REFERENCING {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}();")


FORWARD, BACKWARD = [], []
for short, table, body in (("sales", "loyalty_transaction", SALES_ROWS),
                           ("lines", "loyalty_lineitem", CHILD_ROWS),
                           ("points", "loyalty_pointsentry", CHILD_ROWS),
                           ("redemptions", "loyalty_redemption", CHILD_ROWS)):
    for event, referencing, rows in (
        ("INSERT", "NEW TABLE AS new_rows", ["new_rows"]),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", ["old_rows", "new_rows"]),
        ("DELETE", "OLD TABLE AS old_rows", ["old_rows"]),
    ):
        fn = f"analytics_mark_{short}_{event.lower()}"
        FORWARD.append(function(fn, "".join(body.format(rows=r) for r in rows)))
        FORWARD.append(trigger(f"{fn}_trg", table, event, referencing, fn))
        BACKWARD.append(f"DROP TRIGGER IF EXISTS {fn}_trg ON {table}; DROP FUNCTION IF EXISTS {fn}();")

FORWARD.append(function("analytics_mark_enrolment_update", PERSONA_ROW))
FORWARD.append("CREATE OR REPLACE TRIGGER analytics_mark_enrolment_update_trg "
               "AFTER UPDATE OF is_member, enrolled_at ON loyalty_persona FOR EACH ROW "
               "WHEN (OLD.is_member IS DISTINCT FROM NEW.is_member OR OLD.enrolled_at IS DISTINCT FROM NEW.enrolled_at) "
               "EXECUTE FUNCTION analytics_mark_enrolment_update();")
BACKWARD.append("DROP TRIGGER IF EXISTS analytics_mark_enrolment_update_trg ON loyalty_persona; "
                "DROP FUNCTION IF EXISTS analytics_mark_enrolment_update();")


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0001_initial"),
        ("loyalty", "0006_line_item_name_statistics"),
    ]

    operations = [
        migrations.RunSQL(sql="\n".join(FORWARD), reverse_sql="\n".join(reversed(BACKWARD))),
    ]
