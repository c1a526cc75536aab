"""What counts, in one place: the SQL that turns sales into the rows of the rollup tables.

The rollup (`analytics.services`) stores what these queries return for the days that
changed; the raw path of the page (`analytics.selectors`, `path="raw"`) runs the very same
queries over the requested days instead of reading the tables. So both paths read the same
numbers by construction, and a test compares them after every kind of change.

Definitions (also on the page, under "How these are counted"):
- Days and hours are the company's local time: a sale at 23:30 belongs to that day.
- An order is a completed sale. Voided sales count nowhere. A return (a sale with status
  "refunded", sent by the POS for the goods brought back) is not an order: its value
  (subtotal − discounts) is deducted from net sales on the day of the return.
- Gross sales = order subtotals (before discounts, before tax). Discounts = order
  discounts. Net sales = gross sales − discounts − returns. Tax is never in sales.
- Average order value = (gross sales − discounts) ÷ orders; items per order = units on
  orders ÷ orders (returns not deducted from either).
- A sale is a loyalty member's when its customer had enrolled by the time of the sale.
- Product, brand and category figures are line amounts before tax (after line
  discounts), net of returned lines.
- Points earned = points the orders earned, net of earnings taken back; points redeemed
  = points of rewards redeemed on the orders.
- Customers are the people on the orders (sales without a customer count in sales, not
  in customers). A customer is new in a period when their first order ever is in it.
"""

# `{days}` is a one-column (`day`) query of the local days to read, `{sales}` the relation
# SALES returns (a CTE when the page reads the sales tables, a temporary table when the
# rollup is refreshed), `{personas}` a condition on `t.persona_id`. Parameters: company,
# tz, and those of the pieces.

DAYS_LIST = "SELECT unnest(%(days)s::date[]) AS day"
DAYS_RANGE = "SELECT generate_series(%(first_day)s::date, %(last_day)s::date, interval '1 day')::date AS day"

# Completed sales and returns of the given local days. Each day is its own range of
# `occurred_at` (23 or 25 hours long on DST changes), read through the (company,
# occurred_at) index; "member" is whether the customer had enrolled by then.
SALES = """
SELECT t.id, d.day, extract(hour FROM t.occurred_at AT TIME ZONE %(tz)s::text)::smallint AS hour,
       t.store_id, t.fulfillment::text AS fulfillment, t.persona_id,
       coalesce(p.is_member AND p.enrolled_at <= t.occurred_at, false) AS member,
       t.status = 'completed' AS is_order,
       t.subtotal, t.discount_total, t.tax_total
FROM ({days}) d
JOIN loyalty_transaction t
  ON t.company_id = %(company)s::bigint
 AND t.occurred_at >= (d.day::timestamp AT TIME ZONE %(tz)s::text)
 AND t.occurred_at < ((d.day + 1)::timestamp AT TIME ZONE %(tz)s::text)
LEFT JOIN loyalty_persona p ON p.id = t.persona_id
WHERE t.status IN ('completed', 'refunded')"""

SALES_DAY_COLUMNS = ("day", "store_id", "fulfillment", "member", "orders", "gross_sales", "discounts",
                     "tax", "items", "returns", "returns_value", "points_earned", "points_redeemed")

SALES_DAY = """
SELECT s.day, s.store_id, s.fulfillment, s.member,
       count(*) FILTER (WHERE s.is_order) AS orders,
       coalesce(sum(s.subtotal) FILTER (WHERE s.is_order), 0) AS gross_sales,
       coalesce(sum(s.discount_total) FILTER (WHERE s.is_order), 0) AS discounts,
       coalesce(sum(s.tax_total) FILTER (WHERE s.is_order), 0) AS tax,
       coalesce(sum(i.quantity) FILTER (WHERE s.is_order), 0) AS items,
       count(*) FILTER (WHERE NOT s.is_order) AS returns,
       coalesce(sum(s.subtotal - s.discount_total) FILTER (WHERE NOT s.is_order), 0) AS returns_value,
       coalesce(sum(e.points) FILTER (WHERE s.is_order), 0) AS points_earned,
       coalesce(sum(r.points) FILTER (WHERE s.is_order), 0) AS points_redeemed
FROM {sales} s
LEFT JOIN (SELECT l.transaction_id, sum(l.quantity) AS quantity
           FROM loyalty_lineitem l JOIN {sales} o ON o.id = l.transaction_id
           GROUP BY l.transaction_id) i ON i.transaction_id = s.id
LEFT JOIN (SELECT pe.transaction_id, sum(pe.delta) AS points
           FROM loyalty_pointsentry pe JOIN {sales} o ON o.id = pe.transaction_id
           WHERE pe.kind IN ('earn', 'reverse')
           GROUP BY pe.transaction_id) e ON e.transaction_id = s.id
LEFT JOIN (SELECT rd.transaction_id, sum(rd.points) AS points
           FROM loyalty_redemption rd JOIN {sales} o ON o.id = rd.transaction_id
           WHERE rd.state = 'redeemed'
           GROUP BY rd.transaction_id) r ON r.transaction_id = s.id
GROUP BY s.day, s.store_id, s.fulfillment, s.member"""

# Detail rows, plus one total row per day and hour (GROUPING() = 7: no store, fulfillment
# or loyalty status in it).
SALES_HOUR_COLUMNS = ("day", "hour", "is_total", "store_id", "fulfillment", "member", "orders",
                      "net_sales")

SALES_HOUR = """
SELECT s.day, s.hour, GROUPING(s.store_id, s.fulfillment, s.member) = 7 AS is_total,
       s.store_id, s.fulfillment, s.member,
       count(*) FILTER (WHERE s.is_order) AS orders,
       sum(CASE WHEN s.is_order THEN 1 ELSE -1 END * (s.subtotal - s.discount_total)) AS net_sales
FROM {sales} s
GROUP BY GROUPING SETS ((s.day, s.hour, s.store_id, s.fulfillment, s.member), (s.day, s.hour))"""

PRODUCT_COLUMNS = ("grain", "period_start", "is_total", "store_id", "fulfillment", "member", "category",
                   "brand", "product", "quantity", "net_sales")

# A line's net amount is its total before tax; returned lines count negative.
PRODUCT_DAY = """
SELECT 'day' AS grain, s.day AS period_start,
       GROUPING(s.store_id, s.fulfillment, s.member) = 7 AS is_total,
       s.store_id, s.fulfillment, s.member, l.category, l.brand, l.product,
       sum(CASE WHEN s.is_order THEN l.quantity ELSE -l.quantity END) AS quantity,
       sum(CASE WHEN s.is_order THEN 1 ELSE -1 END
           * (l.total - CASE WHEN l.tax_included THEN l.tax ELSE 0 END)) AS net_sales
FROM {sales} s
JOIN loyalty_lineitem l ON l.transaction_id = s.id
GROUP BY GROUPING SETS ((s.day, s.store_id, s.fulfillment, s.member, l.category, l.brand, l.product),
                        (s.day, l.category, l.brand, l.product))"""

# Month rows from the day rows of the given months (first days of months).
PRODUCT_MONTH = """
SELECT 'month' AS grain, m.month AS period_start, p.is_total, p.store_id, p.fulfillment, p.member,
       p.category, p.brand, p.product, sum(p.quantity) AS quantity, sum(p.net_sales) AS net_sales
FROM unnest(%(months)s::date[]) AS m(month)
JOIN analytics_productsales p
  ON p.company_id = %(company)s::bigint AND p.grain = 'day'
 AND p.period_start >= m.month AND p.period_start < (m.month + interval '1 month')::date
GROUP BY m.month, p.is_total, p.store_id, p.fulfillment, p.member, p.category, p.brand, p.product"""

# Every completed order of the given customers (`{personas}`: a relation with a
# `persona_id` column), on its local day, each customer's read through their index.
ORDERS = """
orders AS (
    SELECT t.persona_id, (t.occurred_at AT TIME ZONE %(tz)s::text)::date AS day, t.store_id,
           t.fulfillment::text AS fulfillment,
           coalesce(p.is_member AND p.enrolled_at <= t.occurred_at, false) AS member
    FROM {personas} a
    JOIN loyalty_persona p ON p.id = a.persona_id
    JOIN LATERAL (SELECT t.persona_id, t.occurred_at, t.store_id, t.fulfillment
                  FROM loyalty_transaction t
                  WHERE t.persona_id = a.persona_id AND t.company_id = %(company)s::bigint
                    AND t.status = 'completed'
                  OFFSET 0) t ON true  -- OFFSET 0: keep it one index probe per customer
)"""

CUSTOMER_COLUMNS = ("persona_id", "first_day", "order_days")

CUSTOMER = """
SELECT o.persona_id, min(o.day) AS first_day, range_agg(daterange(o.day, o.day, '[]')) AS order_days
FROM orders o
GROUP BY o.persona_id"""

ACTIVITY_COLUMNS = ("persona_id", "store_id", "fulfillment", "member", "first_day", "order_days")

ACTIVITY = """
SELECT o.persona_id, o.store_id, o.fulfillment, o.member,
       min(min(o.day)) OVER (PARTITION BY o.persona_id) AS first_day,
       range_agg(daterange(o.day, o.day, '[]')) AS order_days
FROM orders o
GROUP BY o.persona_id, o.store_id, o.fulfillment, o.member"""

ALL_PERSONAS = "(SELECT id AS persona_id FROM loyalty_persona WHERE company_id = %(company)s::bigint)"


def with_sales(query: str, days: str) -> str:
    """`query` over the sales of `days`, read straight from the sales tables."""
    return f"WITH sales AS ({SALES.format(days=days)})\n" + query.format(sales="sales")


def with_orders(query: str, personas: str) -> str:
    return "WITH " + ORDERS.format(personas=personas) + "\n" + query
