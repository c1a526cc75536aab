"""Points for many transactions at once, in SQL, with the same rules as
`points_sync_for_transaction_locked`: each transaction's owner holds exactly what it
should earn, everyone else who once earned from it is brought back to zero, reversals
never take a balance below zero, and the idempotency keys are the one-by-one path's."""

from django.db import connection

from ..models import LoyaltyProgram
from ..selectors import loyalty_program_get
from .webhooks import points_changed_emit_ids

_TARGETS = """
CREATE TEMP TABLE points_moves ON COMMIT DROP AS
WITH targets AS (
    SELECT t.id AS txn_id, t.persona_id,
           CASE WHEN t.status = 'completed' AND (p.is_member OR NOT %(members_only)s)
                THEN (CASE WHEN %(nearest)s THEN round(earnable) ELSE floor(earnable) END)::bigint
                ELSE 0 END AS target
    FROM loyalty_transaction t
    JOIN {table} x ON x.id = t.id
    JOIN loyalty_persona p ON p.id = t.persona_id
    -- The owner's tier multiplies what a sale earns.
    LEFT JOIN loyalty_tier tier ON tier.company_id = p.company_id AND tier.name = p.tier AND p.tier <> ''
    CROSS JOIN LATERAL (
        SELECT (CASE WHEN %(post_tax)s THEN t.total ELSE greatest(0, t.subtotal - t.discount_total) END)
               * %(per_unit)s * coalesce(tier.earn_multiplier, 1) AS earnable
    ) amount
), earned AS (
    -- The sale's own entries (its earning keys) and what returns of it took back since.
    SELECT e.transaction_id AS txn_id, e.persona_id, sum(e.delta)::bigint AS points,
           coalesce(sum(e.delta) FILTER (WHERE NOT own), 0)::bigint AS returned,
           count(*) FILTER (WHERE own)::int AS n
    FROM loyalty_pointsentry e
    JOIN {table} x ON x.id = e.transaction_id
    CROSS JOIN LATERAL (SELECT e.idempotency_key LIKE 'txn:' || e.transaction_id || ':%%' AS own) k
    WHERE e.kind IN ('earn', 'reverse')
    GROUP BY 1, 2
), moves AS (
    SELECT coalesce(t.txn_id, e.txn_id) AS txn_id, coalesce(t.persona_id, e.persona_id) AS persona_id,
           greatest(coalesce(t.target, 0) + coalesce(e.returned, 0), 0) - coalesce(e.points, 0) AS delta,
           coalesce(e.n, 0) AS n
    FROM targets t
    FULL JOIN earned e ON e.txn_id = t.txn_id AND e.persona_id = t.persona_id
)
SELECT * FROM moves WHERE delta <> 0
"""

_LOCK = """
SELECT p.id FROM loyalty_persona p
WHERE p.id IN (SELECT t.persona_id FROM loyalty_transaction t JOIN {table} x ON x.id = t.id
               UNION
               SELECT e.persona_id FROM loyalty_pointsentry e JOIN {table} x ON x.id = e.transaction_id)
ORDER BY p.id FOR UPDATE
"""

# Gains first, then losses in transaction order, each loss cut to what is left, so the
# running balance never dips below zero.
_ENTRIES = """
CREATE TEMP TABLE points_new ON COMMIT DROP AS
WITH ordered AS (
    SELECT m.*, p.points_balance AS start,
           sum(greatest(m.delta, 0)) OVER (PARTITION BY m.persona_id) AS gains,
           sum(greatest(-m.delta, 0)) OVER (PARTITION BY m.persona_id ORDER BY m.txn_id
                                           ROWS UNBOUNDED PRECEDING) AS losses_through
    FROM points_moves m JOIN loyalty_persona p ON p.id = m.persona_id
), clamped AS (
    SELECT txn_id, persona_id, n, start,
           CASE WHEN delta > 0 THEN delta
                ELSE -least(-delta, greatest(0, start + gains - (losses_through + delta)))
           END AS delta
    FROM ordered
)
SELECT txn_id, persona_id, n, delta,
       start + sum(delta) OVER (PARTITION BY persona_id ORDER BY delta > 0 DESC, txn_id
                                ROWS UNBOUNDED PRECEDING) AS balance_after
FROM clamped WHERE delta <> 0
"""

_INSERT = """
INSERT INTO loyalty_pointsentry (company_id, persona_id, delta, kind, balance_after, transaction_id,
                                 staff_user_id, reason, idempotency_key, created_at)
SELECT %(company_id)s, persona_id, delta, CASE WHEN delta > 0 THEN 'earn' ELSE 'reverse' END,
       balance_after, txn_id, NULL, %(reason)s,
       'txn:' || txn_id || ':persona:' || persona_id || ':' || n, now()
FROM points_new
"""

_BALANCES = """
UPDATE loyalty_persona p
SET points_balance = p.points_balance + s.total, lifetime_points = p.lifetime_points + s.total
FROM (SELECT persona_id, sum(delta) AS total FROM points_new GROUP BY persona_id) s
WHERE p.id = s.persona_id
"""


def points_sync_for_transactions(*, company, table: str, reason: str = "") -> int:
    """Bring the ledger in step with every transaction whose id is in temp table `table`
    (one column, `id`). Must run inside the caller's database transaction; locks the
    personas it changes in primary-key order. Returns how many entries it wrote."""
    program = loyalty_program_get(company=company)
    params = {
        "members_only": program.members_only,
        "post_tax": program.earn_on == LoyaltyProgram.EarnOn.POST_TAX,
        "per_unit": program.points_per_unit,
        "nearest": program.rounding == "nearest",
        "company_id": company.pk,
        "reason": reason[:300],
    }
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS points_moves, points_new")
        # Lock before reading balances and membership, in pk order like every other writer.
        cursor.execute(_LOCK.format(table=table))
        cursor.execute(_TARGETS.format(table=table), params)
        # Temporary tables get no statistics unless asked; the planner needs them to join
        # a few hundred thousand rows with hashes rather than nested loops.
        cursor.execute("ANALYZE points_moves")
        cursor.execute(_ENTRIES)
        cursor.execute("ANALYZE points_new")
        cursor.execute(_INSERT, params)
        written = cursor.rowcount
        cursor.execute(_BALANCES)
        cursor.execute("SELECT DISTINCT persona_id FROM points_new")
        changed = [row[0] for row in cursor.fetchall()]
        cursor.execute("DROP TABLE points_moves, points_new")
    points_changed_emit_ids(company_id=company.pk, persona_ids=changed)
    return written


_SIGNUP_BONUS = """
WITH given AS (
    INSERT INTO loyalty_pointsentry (company_id, persona_id, delta, kind, balance_after, transaction_id,
                                     staff_user_id, reason, idempotency_key, created_at)
    SELECT %(company_id)s, p.id, %(bonus)s, 'earn', p.points_balance + %(bonus)s, NULL, NULL,
           'Signup bonus', 'signup:' || p.id, now()
    FROM loyalty_persona p
    WHERE p.id IN ({personas}) AND p.is_member
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING persona_id
)
UPDATE loyalty_persona p SET points_balance = p.points_balance + %(bonus)s,
                             lifetime_points = p.lifetime_points + %(bonus)s
FROM given WHERE p.id = given.persona_id
"""


def signup_bonus_give_bulk(*, company, personas_sql: str) -> int:
    """The signup bonus for the members among `personas_sql` (a SELECT of persona ids)
    who have not had it, as the one-by-one path gives it. Returns how many got it."""
    program = loyalty_program_get(company=company)
    if not program.signup_bonus:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_SIGNUP_BONUS.format(personas=personas_sql),
                       {"company_id": company.pk, "bonus": program.signup_bonus})
        return cursor.rowcount
