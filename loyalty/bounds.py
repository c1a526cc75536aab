"""How large a number of points may be, in one place for the forms, the services and the
API. The ledger's columns (PointsEntry.delta and balance_after, Persona.points_balance and
lifetime_points) are PostgreSQL `integer`s: a value past them is refused in words, never
wrapped around or left to fail in the database."""

POINTS_MAX = 2_147_483_647  # the largest `integer`; -POINTS_MAX is the smallest we accept

POINTS_RANGE_MESSAGE = f"Enter a whole number of points between {-POINTS_MAX:,} and {POINTS_MAX:,}."

BUDTENDER_ADJUSTMENT_LIMIT_DEFAULT = 500


def budtender_limit_message(limit: int) -> str:
    return f"Budtenders may adjust at most {limit:,} points at a time; ask an admin."
