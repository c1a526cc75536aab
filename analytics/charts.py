"""The report as the page shows it: KPI cards, and for each chart its Plotly figure, its
table and its CSV rows, all from the same rows so the three always agree."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .selectors import FULFILLMENT_LABELS, Bucket, SalesReport, Totals, share_percent

TOP = 10
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
BRAND = "#1f6f4a"
ACCENT = "#e8a33d"
PALETTE = ["#1f6f4a", "#7fbf9b", "#e8a33d", "#5b8def", "#c4c9d4"]
SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£"}
UNMAPPED = "Not mapped to a store yet"


def money(value: Decimal | None, currency: str) -> str:
    if value is None:
        return "—"
    symbol = SYMBOLS.get(currency, "")
    sign = "−" if value < 0 else ""
    text = f"{sign}{symbol}{abs(value):,.2f}"
    return text if symbol else f"{text} {currency}"


def number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return f"{value.normalize():,f}"
    return f"{int(value):,}".replace("-", "−")


def percent(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}%"



# --- KPIs ---------------------------------------------------------------------------------------

@dataclass
class Kpi:
    key: str
    label: str
    value: str
    previous: str
    change: str = ""  # "+12.5%", "−3.0 pts", or "" when there is nothing to compare with
    direction: str = ""  # "up", "down", "flat"
    note: str = ""
    judged: bool = True  # up is good (green); discounts are only reported


def _change(current, previous) -> tuple[str, str]:
    if current is None or previous is None or previous == 0:
        return "", ""
    pct = ((Decimal(current) - Decimal(previous)) * 100 / abs(Decimal(previous))).quantize(
        Decimal("0.1"), ROUND_HALF_UP)
    if pct == 0:
        return "0.0%", "flat"
    return (f"+{pct}%" if pct > 0 else f"−{abs(pct)}%"), ("up" if pct > 0 else "down")


def _points_change(current, previous) -> tuple[str, str]:
    if current is None or previous is None:
        return "", ""
    diff = (current - previous).quantize(Decimal("0.1"))
    if diff == 0:
        return "0.0 pts", "flat"
    return (f"+{diff} pts" if diff > 0 else f"−{abs(diff)} pts"), ("up" if diff > 0 else "down")


def kpis(report: SalesReport, currency: str, *, only: tuple[str, ...] | None = None) -> list[Kpi]:
    cur, prev = report.current, report.previous
    cust, prev_cust = report.customers, report.previous_customers
    cards = [
        ("net_sales", "Net sales", cur.net_sales, prev.net_sales, money,
         f"{money(cur.gross_sales, currency)} gross − {money(cur.discounts, currency)} discounts"
         f" − {money(cur.returns_value, currency)} returns"),
        ("orders", "Orders", cur.orders, prev.orders, number,
         f"{number(cur.returns)} return{'s' if cur.returns != 1 else ''}, not counted as orders"),
        ("average_order_value", "Average order value", cur.average_order_value, prev.average_order_value,
         money, "After discounts, before tax"),
        ("items_per_order", "Items per order", cur.items_per_order, prev.items_per_order, number,
         f"{number(cur.items)} units on orders"),
        ("customers", "Unique customers", cust.unique, prev_cust.unique, number,
         "Customers on file who ordered"),
        ("new_customers", "New customers", cust.new, prev_cust.new, number,
         "First order ever in this period"),
        ("returning_customers", "Returning customers", cust.returning, prev_cust.returning, number,
         "Had ordered before this period"),
        ("member_share", "Loyalty members’ share of sales", report.member_share, report.previous_member_share,
         percent, f"{money(report.member_sales, currency)} of net sales"),
        ("points_earned", "Points earned", cur.points_earned, prev.points_earned, number, "On these orders"),
        ("points_redeemed", "Points redeemed", cur.points_redeemed, prev.points_redeemed, number,
         "Rewards redeemed on these orders"),
        ("discounts", "Discounts given", cur.discounts, prev.discounts, money,
         f"{_share_text(cur.discounts, cur.gross_sales)} of gross sales"),
        ("returns", "Returns", cur.returns_value, prev.returns_value, money,
         f"{number(cur.returns)} return{'s' if cur.returns != 1 else ''}, deducted from net sales"),
    ]
    out = []
    for key, label, value, previous, fmt, note in cards:
        if only is not None and key not in only:
            continue
        show = (lambda v, fmt=fmt: fmt(v, currency)) if fmt is money else fmt
        change, direction = (_points_change if key == "member_share" else _change)(value, previous)
        out.append(Kpi(key, label, show(value), show(previous), change, direction, note,
                       judged=key not in ("discounts", "returns")))
    return out


def _share_text(part, whole) -> str:
    return percent(share_percent(part, whole))


# --- charts -------------------------------------------------------------------------------------

@dataclass
class Column:
    label: str
    kind: str = "text"  # text, money, int, qty, pct


@dataclass
class Chart:
    key: str
    title: str
    subtitle: str
    columns: list[Column]
    rows: list[list]  # raw values, in `columns` order: the table and the CSV
    figure: dict | None = None  # None: nothing to draw (the empty state shows)
    empty: str = "No sales in this period."
    footer: list | None = None  # a totals row
    note: str = ""
    size: str = ""  # "wide": the whole row; "third": a third of it; "": half
    export_rows: list | None = None  # what the CSV holds, when more than the table (top 10)
    export_columns: list[Column] | None = None

    def table(self, currency: str) -> tuple[list[list[dict]], list[dict] | None]:
        """The rows as the table shows them: each cell's text, and whether it is a number."""
        def cells(row, blank="—"):
            return [{"text": blank if value is None else _cell(value, column, currency),
                     "num": column.kind != "text"} for value, column in zip(row, self.columns, strict=True)]
        return [cells(row) for row in self.rows], (cells(self.footer, blank="") if self.footer else None)

    def csv_header(self, currency: str) -> list[str]:
        return [f"{c.label} ({currency})" if c.kind == "money" else c.label
                for c in self.export_columns or self.columns]

    def csv_rows(self) -> list[list[str]]:
        rows = self.export_rows if self.export_rows is not None else self.rows
        return [[_csv_cell(value) for value in row] for row in rows]


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> str:
    """Numbers as they are; text that a spreadsheet would take for a formula gets a quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return str(value)


def _cell(value, column: Column, currency: str) -> str:
    if value is None:
        return "—"
    if column.kind == "money":
        return money(value, currency)
    if column.kind in ("int", "qty"):
        return number(value)
    if column.kind == "pct":
        return percent(value)
    return str(value)


def _layout(currency: str, **extra) -> dict:
    axis = {"automargin": True, "gridcolor": "#eef0f3", "zerolinecolor": "#d0d5dd", "fixedrange": True}
    layout = {
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, DejaVu Sans, sans-serif",
                 "size": 12, "color": "#1d2433"},
        "hoverlabel": {"bgcolor": "#1d2433", "font": {"color": "#fff"}},
        "showlegend": False, "bargap": 0.25,
        "xaxis": dict(axis), "yaxis": dict(axis),
        "separators": ".,",
    }
    layout.update(extra)
    return layout


def _hbar(names: list[str], values: list[Decimal], currency: str,
          hover_names: list[str] | None = None) -> dict:
    """Horizontal bars, largest at the top."""
    prefix = SYMBOLS.get(currency, "")
    return {
        "data": [{
            "type": "bar", "orientation": "h", "x": [float(v) for v in values][::-1], "y": names[::-1],
            "customdata": (hover_names or names)[::-1], "marker": {"color": BRAND},
            "hovertemplate": "%{customdata}<br>" + prefix + "%{x:,.2f}<extra></extra>",
        }],
        "layout": _layout(currency, height=max(180, 34 * len(names) + 40),
                          xaxis={"automargin": True, "gridcolor": "#eef0f3", "fixedrange": True,
                                 "tickprefix": prefix, "separatethousands": True},
                          yaxis={"automargin": True, "fixedrange": True}),
    }


def _donut(labels: list[str], values: list, currency: str | None) -> dict | None:
    if any(v < 0 for v in values) or not any(values):
        return None  # a pie cannot show a negative slice: the table says it
    # Empty slices left out (the table keeps them); each label keeps its colour.
    slices = [(label, value, PALETTE[i % len(PALETTE)])
              for i, (label, value) in enumerate(zip(labels, values, strict=True)) if value]
    labels, values, colors = (list(column) for column in zip(*slices, strict=True))
    prefix = SYMBOLS.get(currency, "") if currency else ""
    value_format = prefix + "%{value:,.2f}" if currency else "%{value:,}"
    return {
        "data": [{"type": "pie", "hole": 0.55, "labels": labels, "values": [float(v) for v in values],
                  "sort": False, "marker": {"colors": colors},
                  "textinfo": "percent", "textposition": "inside", "insidetextorientation": "horizontal",
                  "hovertemplate": "%{label}<br>" + value_format
                  + " (%{percent})<extra></extra>"}],
        "layout": _layout(currency or "", height=240, showlegend=True,
                          legend={"orientation": "h", "y": -0.05, "x": 0.5, "xanchor": "center"}),
    }


def _truncate(text: str, length: int = 38) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _bucket_label(bucket: Bucket, kind: str) -> str:
    if kind == "hour":
        return f"{bucket.start:02d}:00"
    if kind == "week":
        return f"Week of {bucket.start:%b %-d, %Y}"
    if kind == "month":
        return f"{bucket.start:%B %Y}"
    return f"{bucket.start:%a %b %-d, %Y}"


def over_time_chart(report: SalesReport, currency: str) -> Chart:
    kind = report.bucket
    prefix = SYMBOLS.get(currency, "")
    if kind == "hour":
        columns = [Column("Hour"), Column("Orders", "int"), Column("Net sales", "money")]
        rows = [[_bucket_label(b, kind), b.orders, b.net_sales] for b in report.over_time]
        footer = ["Total", sum(b.orders for b in report.over_time),
                  sum((b.net_sales for b in report.over_time), Decimal("0"))]
    else:
        columns = [Column(kind.capitalize()), Column("Orders", "int"),
                   Column("Gross sales", "money"), Column("Discounts", "money"), Column("Returns", "money"),
                   Column("Net sales", "money"), Column("Tax", "money")]
        rows = [[_bucket_label(b, kind), b.orders, b.totals.gross_sales, b.totals.discounts,
                 b.totals.returns_value, b.net_sales, b.totals.tax] for b in report.over_time]
        cur = report.current
        footer = ["Total", cur.orders, cur.gross_sales, cur.discounts, cur.returns_value, cur.net_sales,
                  cur.tax]
    x = ([f"{b.start:02d}:00" for b in report.over_time] if kind == "hour"
         else [b.start.isoformat() for b in report.over_time])
    hover_x = [_bucket_label(b, kind) for b in report.over_time]
    figure = None
    if not report.current.is_empty:
        xaxis = {"automargin": True, "gridcolor": "#eef0f3", "fixedrange": True}
        if kind != "hour":
            xaxis.update(type="date", tickformat="%b %Y" if kind == "month" else "%b %-d")
            if kind == "month":
                xaxis["dtick"] = "M1"
        figure = {
            "data": [
                {"type": "bar", "name": "Net sales", "x": x, "customdata": hover_x,
                 "y": [float(b.net_sales) for b in report.over_time], "marker": {"color": BRAND},
                 "hovertemplate": "%{customdata}<br>Net sales " + prefix + "%{y:,.2f}<extra></extra>"},
                {"type": "scatter", "mode": "lines+markers", "name": "Orders", "x": x, "yaxis": "y2",
                 "y": [b.orders for b in report.over_time], "customdata": hover_x,
                 "line": {"color": ACCENT, "width": 2}, "marker": {"size": 5},
                 "hovertemplate": "%{customdata}<br>%{y:,} orders<extra></extra>"},
            ],
            "layout": _layout(currency, height=300, showlegend=True, xaxis=xaxis,
                              legend={"orientation": "h", "y": 1.12, "x": 0},
                              yaxis={"automargin": True, "gridcolor": "#eef0f3", "fixedrange": True,
                                     "tickprefix": prefix, "rangemode": "tozero"},
                              yaxis2={"overlaying": "y", "side": "right", "showgrid": False,
                                      "fixedrange": True, "rangemode": "tozero", "automargin": True}),
        }
    return Chart("sales-over-time", "Sales over time", f"Net sales and orders by {kind}",
                 columns, rows, figure, footer=footer, size="wide")


def store_chart(report: SalesReport, store_names: dict, currency: str) -> Chart:
    items = sorted(report.by_store.items(), key=lambda kv: (-kv[1].net_sales, store_names.get(kv[0], "")))
    names = [store_names.get(store_id, UNMAPPED) if store_id else UNMAPPED for store_id, _ in items]
    total = report.current.net_sales
    rows = [[name, t.orders, t.net_sales, share_percent(t.net_sales, total)]
            for name, (_, t) in zip(names, items, strict=True)]
    figure = None
    if items and not report.current.is_empty:
        figure = _hbar(names, [t.net_sales for _, t in items], currency)
    columns = [Column("Store"), Column("Orders", "int"), Column("Net sales", "money"), Column("Share", "pct")]
    return Chart("stores", "By store", "Net sales per store", columns, rows, figure,
                 footer=["Total", report.current.orders, total, None])


def _item_chart(key, title, subtitle, items, total_label, currency, *, with_brand=False, top=None) -> Chart:
    shown = items[:top] if top else items
    if with_brand:
        columns = [Column("Product"), Column("Brand"), Column("Units", "qty"),
                   Column("Net sales", "money")]
        rows = [[i.name, i.brand or "—", i.quantity, i.net_sales] for i in shown]
        names = [_truncate(f"{i.name} · {i.brand}" if i.brand else i.name) for i in shown]
        hover = [f"{i.name} · {i.brand}" if i.brand else i.name for i in shown]
    else:
        columns = [Column(total_label), Column("Units", "qty"), Column("Net sales", "money")]
        rows = [[i.name or "(none)", i.quantity, i.net_sales] for i in shown]
        names = [_truncate(i.name or "(none)") for i in shown]
        hover = [i.name or "(none)" for i in shown]
    figure = _hbar(names, [i.net_sales for i in shown], currency, hover) if shown else None
    note = f"The {len(shown)} best of {len(items)}; the CSV has them all." if len(shown) < len(items) else ""
    export = ([[i.name, i.brand, i.quantity, i.net_sales] for i in items] if with_brand
              else [[i.name, i.quantity, i.net_sales] for i in items])
    return Chart(key, title, subtitle, columns, rows, figure, empty="No products sold in this period.",
                 note=note, export_rows=export)


def category_chart(report: SalesReport, currency: str) -> Chart:
    chart = _item_chart("categories", "By category", "Net sales of the lines in each category",
                        report.categories, "Category", currency)
    chart.footer = ["Total", sum((i.quantity for i in report.categories), Decimal("0")),
                    sum((i.net_sales for i in report.categories), Decimal("0"))]
    return chart


def product_chart(report: SalesReport, currency: str) -> Chart:
    return _item_chart("products", "Top products", "By net sales", report.products, "Product", currency,
                       with_brand=True, top=TOP)


def brand_chart(report: SalesReport, currency: str) -> Chart:
    return _item_chart("brands", "Top brands", "By net sales", report.brands, "Brand", currency, top=TOP)


def hours_chart(report: SalesReport, currency: str) -> Chart:
    cells = {key: value for key, value in report.hours.items() if value[0] or value[1]}
    rows = [[WEEKDAYS[weekday - 1], f"{hour:02d}:00", orders, net]
            for (weekday, hour), (orders, net) in sorted(cells.items())]
    columns = [Column("Weekday"), Column("Hour"), Column("Orders", "int"), Column("Net sales", "money")]
    figure = None
    if any(orders for orders, _ in cells.values()):
        hours = [h for _, h in cells]
        first, last = min(hours), max(hours)
        x = [f"{h:02d}:00" for h in range(first, last + 1)]
        z = [[report.hours.get((weekday, h), (0, 0))[0] for h in range(first, last + 1)]
             for weekday in range(1, 8)]
        figure = {
            "data": [{"type": "heatmap", "x": x, "y": WEEKDAYS, "z": z, "xgap": 2, "ygap": 2,
                      "colorscale": [[0, "#f2f7f4"], [0.5, "#7fbf9b"], [1, "#17573a"]],
                      "hovertemplate": "%{y} %{x}<br>%{z:,} orders<extra></extra>",
                      "colorbar": {"thickness": 10, "outlinewidth": 0,
                                   "title": {"text": "Orders", "side": "right"}}}],
            "layout": _layout(currency, height=280,
                              xaxis={"automargin": True, "fixedrange": True, "showgrid": False,
                                     "type": "category"},
                              yaxis={"automargin": True, "fixedrange": True, "showgrid": False,
                                     "autorange": "reversed", "type": "category"}),
        }
    return Chart("hours", "Busiest hours", "Orders by hour of day and weekday (local time)", columns, rows,
                 figure, size="wide")


def fulfillment_chart(report: SalesReport, currency: str) -> Chart:
    # Every type, in the same order and colour whatever the period holds.
    keys = [*FULFILLMENT_LABELS, *(k for k in report.by_fulfillment if k not in FULFILLMENT_LABELS)]
    totals = [report.by_fulfillment.get(k, Totals()) for k in keys]
    labels = [FULFILLMENT_LABELS.get(k, k) for k in keys]
    return _split_chart("fulfillment", "Fulfillment type", "Net sales by how orders were fulfilled",
                        "Fulfillment", labels, totals, report.current, currency)


def loyalty_chart(report: SalesReport, currency: str) -> Chart:
    chart = _split_chart("loyalty", "Loyalty members vs others",
                         "Net sales by whether the customer was a member", "Customers",
                         ["Loyalty members", "Everyone else"],
                         [report.by_member.get(k, Totals()) for k in (True, False)], report.current, currency)
    chart.note = "“Everyone else” includes sales without a customer on file."
    return chart


def _split_chart(key, title, subtitle, label, labels, totals: list[Totals], whole: Totals, currency) -> Chart:
    rows = [[name, t.orders, t.net_sales, share_percent(t.net_sales, whole.net_sales)]
            for name, t in zip(labels, totals, strict=True)]
    figure = None if whole.is_empty else _donut(labels, [t.net_sales for t in totals], currency)
    columns = [Column(label), Column("Orders", "int"), Column("Net sales", "money"), Column("Share", "pct")]
    return Chart(key, title, subtitle, columns, rows, figure, size="third",
                 footer=["Total", whole.orders, whole.net_sales, None])


def customers_chart(report: SalesReport, currency: str) -> Chart:
    c = report.customers
    rows = [["New", c.new, share_percent(c.new, c.unique)],
            ["Returning", c.returning, share_percent(c.returning, c.unique)]]
    figure = _donut(["New", "Returning"], [c.new, c.returning], None) if c.unique else None
    return Chart("customers", "New vs returning customers", "Customers on file who ordered in this period",
                 [Column("Customers"), Column("Count", "int"), Column("Share", "pct")], rows, figure,
                 empty="No customer on file ordered in this period.", footer=["Total", c.unique, None],
                 size="third",
                 note="New: their first order ever is in this period.")


# Every chart on the page, in page order, by the key its CSV link uses.
CHARTS = {
    "sales-over-time": lambda report, store_names, currency: over_time_chart(report, currency),
    "stores": store_chart,
    "categories": lambda report, store_names, currency: category_chart(report, currency),
    "products": lambda report, store_names, currency: product_chart(report, currency),
    "brands": lambda report, store_names, currency: brand_chart(report, currency),
    "hours": lambda report, store_names, currency: hours_chart(report, currency),
    "fulfillment": lambda report, store_names, currency: fulfillment_chart(report, currency),
    "loyalty": lambda report, store_names, currency: loyalty_chart(report, currency),
    "customers": lambda report, store_names, currency: customers_chart(report, currency),
}


def all_charts(report: SalesReport, store_names: dict, currency: str) -> list[Chart]:
    return [build(report, store_names, currency) for build in CHARTS.values()]


@dataclass
class PeriodText:
    label: str
    previous: str


def period_text(report: SalesReport) -> PeriodText:
    filters = report.filters
    period, previous, until = filters.period, filters.previous, filters.previous_until
    label = _dates(period.start, period.end)
    if until is None:
        return PeriodText(label, _dates(previous.start, previous.end))
    clock = f"{until:%H:%M}"
    if period.days == 1 and previous.days == 1:
        yesterday = previous.end == period.start - dt.timedelta(days=1)
        return PeriodText(label, f"yesterday to {clock}" if yesterday
                          else f"{_dates(previous.start, previous.end)} to {clock}")
    if period.start.weekday() == 0 and period.start - previous.start == dt.timedelta(days=7):
        return PeriodText(label, f"last week to {until:%a} {clock}")
    if period.start.day == 1 and previous.start.day == 1 and previous.end.month != period.end.month:
        return PeriodText(label, f"last month to {until:%b %-d}, {clock}")
    return PeriodText(label, f"{_dates(previous.start, previous.end)} (the last day to {clock})")


def _dates(start: dt.date, end: dt.date) -> str:
    if start == end:
        return f"{start:%a %b %-d, %Y}"
    if start.year == end.year:
        return f"{start:%b %-d} – {end:%b %-d, %Y}"
    return f"{start:%b %-d, %Y} – {end:%b %-d, %Y}"
