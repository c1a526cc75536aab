"""How large a number may be, in one place for the forms, the API, the services and the
imports. Each bound fits its column and every value derived from it (the points a sale
earns, a line's total from quantity × unit price, the sum of a sale's discounts, subtotal
plus tax): a value past one is refused in words naming the field, never wrapped around,
rounded away or left to fail in the database."""

from decimal import Decimal, InvalidOperation

from .errors import NumberOutOfRange

# Points: a business limit, far inside the ledger's `bigint` columns, so that sums of
# entries (balances, lifetime totals, SQL aggregates) cannot overflow either.
POINTS_MAX = 1_000_000_000  # -POINTS_MAX is the smallest adjustment we accept

# Money: numeric(12, 2) holds up to 9,999,999,999.99.
MONEY_MAX = Decimal("9999999999.99")
MONEY_PLACES = 2

# Quantity: numeric(12, 3) would hold 999,999,999.999; a hundred million units on one line
# is already far past any sale, and keeps quantity × price meaningful.
QUANTITY_MAX = Decimal("99999999.999")
QUANTITY_PLACES = 3

POINTS_RANGE_MESSAGE = f"Enter a whole number of points between {-POINTS_MAX:,} and {POINTS_MAX:,}."

BUDTENDER_ADJUSTMENT_LIMIT_DEFAULT = 500


def budtender_limit_message(limit: int) -> str:
    return f"Budtenders may adjust at most {limit:,} points at a time; ask an admin."


def too_large(value, max_value) -> str:
    """'5000000000 is more than 99,999,999.999': the words every refusal uses."""
    return f"{value} is more than {max_value:,}"


def number_problem(value, *, max_value: Decimal, places: int) -> str:
    """Why `value` cannot be stored as a non-negative number of at most `max_value` with
    `places` decimals, or '' when it can."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return f"'{value}' is not a number"
    if not number.is_finite():
        return f"'{value}' is not a number"
    if number < 0:
        return f"{value} is negative"
    if number > max_value:
        return too_large(value, max_value)
    if number != number.quantize(Decimal(1).scaleb(-places)):
        return f"{value} has more than {places} decimal places"
    return ""


def number_check(value, *, field: str, max_value: Decimal, places: int) -> Decimal:
    problem = number_problem(value, max_value=max_value, places=places)
    if problem:
        raise NumberOutOfRange(f"{field}: {problem}.", extra={"field": field, "max": str(max_value)})
    return Decimal(str(value))


def money_check(value, *, field: str) -> Decimal:
    return number_check(value, field=field, max_value=MONEY_MAX, places=MONEY_PLACES)


def quantity_check(value, *, field: str) -> Decimal:
    return number_check(value, field=field, max_value=QUANTITY_MAX, places=QUANTITY_PLACES)


def derived_money_check(value: Decimal, *, field: str, what: str) -> Decimal:
    """A computed amount (`what`, e.g. 'quantity × unit price') that must fit a money column."""
    if value > MONEY_MAX:
        raise NumberOutOfRange(f"{field}: {what} is more than {MONEY_MAX:,}.",
                               extra={"field": field, "max": str(MONEY_MAX)})
    return value


def line_total(quantity: Decimal, unit_price: Decimal, *, field: str) -> Decimal:
    """quantity × unit price to the cent, refused when it would not fit the column."""
    total = quantity * unit_price
    derived_money_check(total, field=field, what="quantity × unit price")
    return total.quantize(Decimal("0.01"))


def points_check(points: int, *, field: str, what: str = "points") -> int:
    if abs(points) > POINTS_MAX:
        raise NumberOutOfRange(f"{field}: this would be {points:,} {what}, more than {POINTS_MAX:,}.",
                               extra={"field": field, "max": POINTS_MAX})
    return points
