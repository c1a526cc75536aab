"""A campaign report's charts, built like the Analytics page's: a Plotly figure and the table
it comes from, from the same rows (the page shows either)."""

from __future__ import annotations

import math
from decimal import Decimal

from analytics.charts import ACCENT, BRAND, SYMBOLS, Chart, Column, _layout

from .report import CampaignReport, GroupStats, _money, t_quantile, window_text

GROUP_COLORS = {"send": BRAND, "holdout": "#c4c9d4"}


def _mean_range(group: GroupStats) -> tuple[Decimal, Decimal] | None:
    """The 95% range of a group's average spending (t with n − 1 degrees of freedom); no
    one spends less than nothing, so it starts at 0 at the lowest."""
    if group.n < 2:
        return None
    margin = t_quantile(0.975, group.n - 1) * math.sqrt(group.revenue_var / group.n)
    return _money(max(group.revenue_mean - margin, 0.0)), _money(group.revenue_mean + margin)


def conversion_chart(report: CampaignReport, currency: str) -> Chart:
    groups = report.groups
    rows = [[g.label, g.n, g.converters, g.conversion_percent] for g in groups]
    columns = [Column("Group"), Column("People", "int"), Column("Bought at least once", "int"),
               Column("Conversion rate", "pct")]
    figure = None
    if any(g.n for g in groups):
        figure = {
            "data": [{
                "type": "bar", "x": [g.label for g in groups],
                "y": [float(g.conversion_percent or 0) for g in groups],
                "customdata": [[g.converters, g.n] for g in groups],
                "marker": {"color": [GROUP_COLORS[g.group] for g in groups]},
                "hovertemplate": "%{x}<br>%{y:.1f}% bought (%{customdata[0]:,} of %{customdata[1]:,})"
                                 "<extra></extra>",
            }],
            "layout": _layout(currency, height=260,
                              yaxis={"automargin": True, "gridcolor": "#eef0f3", "fixedrange": True,
                                     "ticksuffix": "%", "rangemode": "tozero"}),
        }
    return Chart("conversion", "Conversion by group",
                 f"Share who made a completed purchase in {window_text(report)}", columns, rows, figure,
                 empty="Nobody in either group yet.")


def revenue_chart(report: CampaignReport, currency: str) -> Chart:
    groups = report.groups
    ranges = [_mean_range(g) for g in groups]
    rows = [[g.label, g.n, g.revenue, g.revenue_per_person, r[0] if r else None, r[1] if r else None]
            for g, r in zip(groups, ranges, strict=True)]
    columns = [Column("Group"), Column("People", "int"), Column("Sales", "money"),
               Column("Per person", "money"), Column("95% low", "money"), Column("95% high", "money")]
    prefix = SYMBOLS.get(currency, "")
    figure = None
    if any(g.n for g in groups):
        means = [float(g.revenue_per_person or 0) for g in groups]
        trace = {
            "type": "bar", "x": [g.label for g in groups], "y": means,
            "marker": {"color": [GROUP_COLORS[g.group] for g in groups]},
            "hovertemplate": "%{x}<br>" + prefix + "%{y:,.2f} per person<extra></extra>",
        }
        if all(ranges):
            trace["error_y"] = {
                "type": "data", "symmetric": False, "color": "#1d2433", "thickness": 1.5, "width": 8,
                "array": [float(r[1]) - m for r, m in zip(ranges, means, strict=True)],
                "arrayminus": [m - float(r[0]) for r, m in zip(ranges, means, strict=True)],
            }
        figure = {
            "data": [trace],
            "layout": _layout(currency, height=260,
                              yaxis={"automargin": True, "gridcolor": "#eef0f3", "fixedrange": True,
                                     "tickprefix": prefix, "separatethousands": True}),
        }
    return Chart("revenue", "Sales per person by group",
                 f"Completed sales in {window_text(report)} ÷ people in the group, with each average’s "
                 "95% range", columns, rows, figure, empty="Nobody in either group yet.",
                 note="Everyone counts, including people who bought nothing.")


def funnel_chart(report: CampaignReport, currency: str) -> Chart:
    o = report.outcomes
    steps = [("Queued", o.queued), ("Sent", o.sent), ("Delivered", o.delivered),
             ("Clicked", o.unique_clicks)]
    rows = [[label, count, _share(count, o.queued)] for label, count in steps]
    columns = [Column("Step"), Column("People", "int"), Column("Of queued", "pct")]
    figure = None
    if o.queued:
        labels = [label for label, _ in steps]
        figure = {
            "data": [{
                "type": "bar", "orientation": "h", "y": labels[::-1], "x": [c for _, c in steps][::-1],
                "text": [f"{_share(c, o.queued)}%" for _, c in steps][::-1], "textposition": "auto",
                "marker": {"color": [BRAND, BRAND, BRAND, ACCENT][::-1]},
                "hovertemplate": "%{y}: %{x:,}<extra></extra>",
            }],
            "layout": _layout(currency, height=220,
                              xaxis={"automargin": True, "gridcolor": "#eef0f3", "fixedrange": True,
                                     "separatethousands": True, "rangemode": "tozero",
                                     **({"dtick": 1} if o.queued < 10 else {})},  # no half people
                              yaxis={"automargin": True, "fixedrange": True}),
        }
    return Chart("funnel", "Delivery", "Queued → sent → delivered → clicked", columns, rows, figure,
                 empty="No message queued.", size="wide",
                 note="Clicked: recipients who clicked a link at least once.")


def _share(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


def report_charts(report: CampaignReport, currency: str) -> list[dict]:
    """Each chart with what the partial needs to show it: its table's cells and element ids."""
    charts = [funnel_chart(report, currency)]
    if report.queued:
        charts += [conversion_chart(report, currency), revenue_chart(report, currency)]
    out = []
    for chart in charts:
        rows, footer = chart.table(currency)
        out.append({"chart": chart, "rows": rows, "footer": footer,
                    "figure_id": f"campaign-figure-{chart.key}",
                    "data_id": f"campaign-figure-{chart.key}-data"})
    return out
