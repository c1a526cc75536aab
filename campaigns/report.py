"""A campaign's report: what became of its messages, who opted out or clicked, and whether
the people picked to receive it bought more than the people held out.

The comparison is by intention to treat: every persona assigned to the "send" group counts,
whether or not their message went out or arrived, against every persona held out. The two
groups were drawn at random, so this is the fair comparison; counting only the delivered
would compare reachable customers with everyone.

Everything is read in a few SQL queries whatever the number of recipients.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db import connections
from django.utils import timezone

from loyalty.models import ConsentRecord, Transaction, TransactionStatus

from .models import Campaign, CampaignLink, CampaignRecipient, Channel, InboundMessage, LinkClick

MIN_DAYS, MAX_DAYS = 1, 90
CENT = Decimal("0.01")
CONFIDENCE = 0.95

State = CampaignRecipient.State
SENT_STATES = (State.SENT, State.DELIVERED, State.UNDELIVERED)
WAITING_STATES = (State.PENDING, State.CLAIMED)


# --- Student's t quantile ---------------------------------------------------------------------

def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (t >= 0; df may be fractional)."""
    return 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The value below which a share `p` (0.5 <= p < 1) of Student's t with `df` degrees of
    freedom falls: t_quantile(0.975, 10) == 2.228. The distribution function is inverted by
    bisection, so fractional degrees of freedom (Welch's) are exact too."""
    if not 0.5 <= p < 1.0:
        raise ValueError("p must be in [0.5, 1).")
    if df <= 0:
        raise ValueError("df must be positive.")
    tail = 1.0 - p
    low, high = 0.0, 1.0
    while t_upper_tail(high, df) > tail:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_upper_tail(mid, df) > tail:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# --- Welch's interval ------------------------------------------------------------------------

@dataclass
class Interval:
    difference: float
    low: float
    high: float
    df: float | None  # None: no spread in either group, the difference is exact


def welch_interval(mean1: float, var1: float, n1: int, mean2: float, var2: float, n2: int,
                   confidence: float = CONFIDENCE) -> Interval:
    """The `confidence` interval of mean1 − mean2 for two independent samples whose
    variances may differ (Welch): se = √(v1/n1 + v2/n2), Welch–Satterthwaite df."""
    if n1 < 2 or n2 < 2:
        raise ValueError("Each group needs at least two people.")
    diff = mean1 - mean2
    a, b = var1 / n1, var2 / n2
    se2 = a + b
    if se2 <= 0:
        return Interval(diff, diff, diff, None)
    df = se2 * se2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    margin = t_quantile(1 - (1 - confidence) / 2, df) * math.sqrt(se2)
    return Interval(diff, diff - margin, diff + margin, df)


# --- the report ------------------------------------------------------------------------------

@dataclass
class Outcomes:
    queued: int = 0  # the "send" group: picked to receive the message
    sent: int = 0  # sent, delivered and undelivered
    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    skipped: int = 0
    waiting: int = 0  # pending or being sent
    cancelled: int = 0
    held_out: int = 0
    opted_out: int = 0
    clicks: int = 0
    unique_clicks: int = 0

    @property
    def click_rate(self) -> Decimal | None:
        """Recipients who clicked, in percent of messages sent."""
        return _pct(self.unique_clicks, self.sent)

    @property
    def delivery_rate(self) -> Decimal | None:
        return _pct(self.delivered, self.sent)

    @property
    def opt_out_rate(self) -> Decimal | None:
        return _pct(self.opted_out, self.sent)


@dataclass
class GroupStats:
    group: str  # "send" or "holdout"
    n: int = 0
    converters: int = 0
    revenue: Decimal = Decimal("0")
    revenue_mean: float = 0.0
    revenue_var: float = 0.0  # sample variance of each person's spending (zeros included)

    @property
    def label(self) -> str:
        return CampaignRecipient.Group(self.group).label

    @property
    def conversion_rate(self) -> float | None:
        return self.converters / self.n if self.n else None

    @property
    def conversion_var(self) -> float:
        """Sample variance of the 0/1 "bought" of each person."""
        if self.n < 2:
            return 0.0
        p = self.converters / self.n
        return p * (1 - p) * self.n / (self.n - 1)

    @property
    def conversion_percent(self) -> Decimal | None:
        return _pct(self.converters, self.n)

    @property
    def revenue_per_person(self) -> Decimal | None:
        return _money(self.revenue_mean) if self.n else None


@dataclass
class Lift:
    """send − holdout, with its 95% interval (None, and a reason, when it can't be measured)."""

    revenue: Interval | None = None  # per person, in money
    conversion: Interval | None = None  # in fractions (0.012 = 1.2 points)
    incremental_revenue: Decimal | None = None  # revenue lift per person × people in "send"
    incremental_low: Decimal | None = None
    incremental_high: Decimal | None = None
    reason: str = ""

    @property
    def measured(self) -> bool:
        return self.revenue is not None


@dataclass
class CampaignReport:
    campaign: Campaign
    days: int
    start: dt.datetime | None
    end: dt.datetime | None  # the window's end, clipped at now
    complete: bool  # the whole window is in the past
    outcomes: Outcomes
    send: GroupStats = field(default_factory=lambda: GroupStats("send"))
    holdout: GroupStats = field(default_factory=lambda: GroupStats("holdout"))
    lift: Lift = field(default_factory=Lift)

    @property
    def queued(self) -> bool:
        return self.start is not None

    @property
    def days_so_far(self) -> int:
        """Whole and started days of the window seen so far."""
        if not self.start or not self.end or self.end <= self.start:
            return 0
        return min(self.days, math.ceil((self.end - self.start) / dt.timedelta(days=1)))

    @property
    def groups(self) -> list[GroupStats]:
        return [self.send, self.holdout]

    # What the page shows, in the company's currency.

    @property
    def currency(self) -> str:
        return self.campaign.company.currency

    @property
    def window_text(self) -> str:
        return window_text(self)

    @property
    def zero_text(self) -> str:
        from analytics.charts import money

        return money(Decimal("0"), self.currency).replace("0.00", "0")

    @property
    def lift_text(self) -> str:
        return lift_sentence(self, self.currency)

    @property
    def conversion_text(self) -> str:
        return conversion_sentence(self)

    @property
    def lift_rows(self) -> list[dict]:
        """The lift table: each measure's difference (send − holdout) and 95% range."""
        from analytics.charts import money

        lift = self.lift
        if not lift.measured:
            return []
        r, c = lift.revenue, lift.conversion
        return [
            {"label": "Sales per person", "value": money(_money(r.difference), self.currency),
             "low": money(_money(r.low), self.currency), "high": money(_money(r.high), self.currency)},
            {"label": "Conversion rate", "value": _points(c.difference), "low": _points(c.low),
             "high": _points(c.high)},
            {"label": f"Sales from the campaign ({self.send.n:,} recipients)",
             "value": money(lift.incremental_revenue, self.currency),
             "low": money(lift.incremental_low, self.currency),
             "high": money(lift.incremental_high, self.currency)},
        ]

    @property
    def kpis(self) -> list[dict]:
        o = self.outcomes

        def pct(value):
            return "—" if value is None else f"{value}%"

        return [
            {"key": "sent", "label": "Sent", "value": f"{o.sent:,}", "note": f"of {o.queued:,} queued"},
            {"key": "delivered", "label": "Delivered", "value": f"{o.delivered:,}",
             "note": f"{pct(o.delivery_rate)} of sent · {o.undelivered:,} undelivered"},
            {"key": "failed", "label": "Failed", "value": f"{o.failed:,}",
             "note": f"{o.skipped:,} skipped · {o.cancelled:,} cancelled"},
            {"key": "waiting", "label": "Waiting", "value": f"{o.waiting:,}", "note": "not sent yet"},
            {"key": "held-out", "label": "Held out", "value": f"{o.held_out:,}",
             "note": "picked at random to get nothing"},
            {"key": "opted-out", "label": "Opted out", "value": f"{o.opted_out:,}",
             "note": f"{pct(o.opt_out_rate)} of sent, since it was queued"},
            {"key": "clicks", "label": "Clicked", "value": f"{o.unique_clicks:,}",
             "note": f"{o.clicks:,} clicks in all"},
            {"key": "click-rate", "label": "Click rate", "value": pct(o.click_rate),
             "note": "recipients who clicked ÷ sent"},
        ]


def _pct(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def clean_days(value, default: int) -> tuple[int, str]:
    """The window asked for, as whole days in 1–90; otherwise the default and what to say."""
    if value in (None, ""):
        return default, ""
    try:
        days = int(str(value).strip())
    except ValueError:
        return default, "Pick a window of 1 to 90 days."
    if not MIN_DAYS <= days <= MAX_DAYS:
        return default, "Pick a window of 1 to 90 days."
    return days, ""


def _tables() -> dict:
    return {
        "recipient": CampaignRecipient._meta.db_table,
        "link": CampaignLink._meta.db_table,
        "click": LinkClick._meta.db_table,
        "inbound": InboundMessage._meta.db_table,
        "consent": ConsentRecord._meta.db_table,
        "transaction": Transaction._meta.db_table,
    }


# One row: the states, the clicks and the opt-outs of a campaign.
OUTCOMES_SQL = """
WITH states AS (
  SELECT count(*) FILTER (WHERE r."group" = 'send') AS queued,
         count(*) FILTER (WHERE r.state IN ('sent', 'delivered', 'undelivered')) AS sent,
         count(*) FILTER (WHERE r.state = 'delivered') AS delivered,
         count(*) FILTER (WHERE r.state = 'undelivered') AS undelivered,
         count(*) FILTER (WHERE r.state = 'failed') AS failed,
         count(*) FILTER (WHERE r.state = 'skipped') AS skipped,
         count(*) FILTER (WHERE r.state IN ('pending', 'claimed')) AS waiting,
         count(*) FILTER (WHERE r.state = 'cancelled') AS cancelled,
         count(*) FILTER (WHERE r."group" = 'holdout') AS held_out
    FROM {recipient} r WHERE r.campaign_id = %(campaign)s
)
SELECT s.queued, s.sent, s.delivered, s.undelivered, s.failed, s.skipped, s.waiting, s.cancelled, s.held_out,
  (SELECT count(*) FROM (
     SELECT i.persona_id FROM {inbound} i
      WHERE %(stop_counts)s AND i.company_id = %(company)s AND i.keyword = 'stop'
        AND i.received_at >= %(start)s AND i.persona_id IS NOT NULL
     UNION
     SELECT c.persona_id FROM {consent} c
      WHERE c.company_id = %(company)s AND c.channel = %(channel)s AND NOT c.granted
        AND c.created_at >= %(start)s
   ) o WHERE o.persona_id IN (SELECT r.persona_id FROM {recipient} r
                               WHERE r.campaign_id = %(campaign)s AND r."group" = 'send')),
  (SELECT count(*) FROM {click} k JOIN {link} l ON l.id = k.link_id WHERE l.campaign_id = %(campaign)s),
  (SELECT count(DISTINCT k.recipient_id) FROM {click} k JOIN {link} l ON l.id = k.link_id
    WHERE l.campaign_id = %(campaign)s AND k.recipient_id IS NOT NULL)
  FROM states s
"""

# One row per group: people, buyers, and the mean and sample variance of what each spent
# (completed sales in the window; people who bought nothing count as 0).
GROUPS_SQL = """
WITH spend AS (
  SELECT t.persona_id, sum(t.total) AS revenue
    FROM {transaction} t
   WHERE t.company_id = %(company)s AND t.status = %(completed)s
     AND t.occurred_at >= %(start)s AND t.occurred_at < %(end)s
     AND t.persona_id IN (SELECT r.persona_id FROM {recipient} r WHERE r.campaign_id = %(campaign)s)
   GROUP BY t.persona_id
)
SELECT r."group", count(*), count(s.persona_id), coalesce(sum(s.revenue), 0),
       avg(coalesce(s.revenue, 0)), coalesce(var_samp(coalesce(s.revenue, 0)), 0)
  FROM {recipient} r LEFT JOIN spend s ON s.persona_id = r.persona_id
 WHERE r.campaign_id = %(campaign)s
 GROUP BY r."group"
"""


def report_window(campaign: Campaign, days: int, now: dt.datetime) -> tuple[dt.datetime, dt.datetime, bool]:
    start = campaign.queued_at
    end = start + dt.timedelta(days=days)
    return start, min(end, now), end <= now


def campaign_report(*, campaign: Campaign, days: int | None = None, now: dt.datetime | None = None,
                    using: str = "default") -> CampaignReport:
    """The campaign's outcomes, and over [queued_at, queued_at + days) clipped at now, how the
    people picked to receive it bought compared with the holdout."""
    days = campaign.report_days if days is None else days
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError("The report window is 1 to 90 days.")
    now = now or timezone.now()
    tables = _tables()
    outcomes = Outcomes()
    if campaign.queued_at is None:
        return CampaignReport(campaign, days, None, None, False, outcomes,
                              lift=Lift(reason="Not sent yet: there is nothing to compare."))
    start, end, complete = report_window(campaign, days, now)
    params = {"campaign": campaign.pk, "company": campaign.company_id, "start": start, "end": end,
              "channel": campaign.channel, "stop_counts": campaign.channel == Channel.SMS,
              "completed": TransactionStatus.COMPLETED}
    with connections[using].cursor() as cursor:
        cursor.execute(OUTCOMES_SQL.format(**tables), params)
        row = cursor.fetchone()
        (outcomes.queued, outcomes.sent, outcomes.delivered, outcomes.undelivered, outcomes.failed,
         outcomes.skipped, outcomes.waiting, outcomes.cancelled, outcomes.held_out, outcomes.opted_out,
         outcomes.clicks, outcomes.unique_clicks) = row
        groups = {}
        if end > start:
            cursor.execute(GROUPS_SQL.format(**tables), params)
            for group, n, converters, revenue, mean, var in cursor.fetchall():
                groups[group] = GroupStats(group, n, converters, Decimal(revenue), float(mean), float(var))
    send = groups.get("send") or GroupStats("send", outcomes.queued)
    holdout = groups.get("holdout") or GroupStats("holdout", outcomes.held_out)
    report = CampaignReport(campaign, days, start, end, complete, outcomes, send, holdout)
    report.lift = _lift(send, holdout)
    return report


def _conversion_interval(send: GroupStats, holdout: GroupStats) -> Interval:
    """Welch's interval of the difference in conversion, kept within what a difference of
    two shares can be (−100 to +100 points)."""
    c = welch_interval(send.conversion_rate, send.conversion_var, send.n,
                       holdout.conversion_rate, holdout.conversion_var, holdout.n)
    return Interval(c.difference, max(c.low, -1.0), min(c.high, 1.0), c.df)


def _lift(send: GroupStats, holdout: GroupStats) -> Lift:
    if holdout.n == 0:
        return Lift(reason="No holdout group: lift can't be measured.")
    if send.n < 2 or holdout.n < 2:
        return Lift(reason="Each group needs at least two people to measure a lift.")
    revenue = welch_interval(send.revenue_mean, send.revenue_var, send.n,
                             holdout.revenue_mean, holdout.revenue_var, holdout.n)
    conversion = _conversion_interval(send, holdout)
    return Lift(revenue=revenue, conversion=conversion,
                incremental_revenue=_money(revenue.difference * send.n),
                incremental_low=_money(revenue.low * send.n),
                incremental_high=_money(revenue.high * send.n))


# --- what the page says ----------------------------------------------------------------------

def window_text(report: CampaignReport) -> str:
    if report.complete:
        return f"{report.days} day{'s' if report.days != 1 else ''}"
    so_far = report.days_so_far
    return f"the first {so_far} day{'s' if so_far != 1 else ''} so far (of {report.days})"


def lift_sentence(report: CampaignReport, currency: str) -> str:
    """The revenue lift and its interval in one plain sentence."""
    from analytics.charts import money

    lift = report.lift
    if not lift.measured:
        return lift.reason
    r = lift.revenue
    diff, low, high = _money(r.difference), _money(r.low), _money(r.high)
    over = f"over {window_text(report)}"
    if diff == 0:
        spent = f"Recipients spent the same per person as the holdout {over}"
    else:
        spent = (f"Recipients spent {money(abs(diff), currency)} {'more' if diff > 0 else 'less'} per person "
                 f"than the holdout {over}")
    if r.df is None:
        return spent + "; nobody's spending varied, so there is no range to give."
    interval = f" (95% confidence: {money(low, currency)} to {money(high, currency)})"
    zero = money(Decimal("0"), currency).replace("0.00", "0")
    if low > 0:
        verdict = f"the whole interval is above {zero}, so the campaign most likely raised spending."
    elif high < 0:
        verdict = f"the whole interval is below {zero}, so recipients most likely spent less because of it."
    else:
        verdict = f"the interval includes {zero}, so the campaign may have made no difference."
    return f"{spent}{interval}; {verdict}"


def conversion_sentence(report: CampaignReport) -> str:
    lift = report.lift
    if not lift.measured:
        return ""
    c = lift.conversion
    points = _points(c.difference)
    text = (f"{report.send.conversion_percent}% of recipients bought at least once, against "
            f"{report.holdout.conversion_percent}% of the holdout: {points}")
    if c.df is None:
        return text + "."
    return f"{text} (95% confidence: {_points(c.low)} to {_points(c.high)})."


def _points(fraction: float) -> str:
    value = Decimal(str(fraction * 100)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    if value == 0:
        return "0.0 points"
    return f"{'+' if value > 0 else '−'}{abs(value)} points"


# --- the campaigns list ----------------------------------------------------------------------

@dataclass
class ListFigures:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    send_n: int = 0
    send_converters: int = 0
    holdout_n: int = 0
    holdout_converters: int = 0
    conversion_lift: Interval | None = None  # send − holdout conversion, over each campaign's own window

    @property
    def conversion_lift_points(self) -> Decimal | None:
        if self.conversion_lift is None:
            return None
        return Decimal(str(self.conversion_lift.difference * 100)).quantize(Decimal("0.1"), ROUND_HALF_UP)

    @property
    def conversion_lift_text(self) -> str:
        return "—" if self.conversion_lift is None else _points(self.conversion_lift.difference)

    @property
    def lift_is_clear(self) -> bool:
        """The interval leaves 0 out: the difference is most likely real."""
        c = self.conversion_lift
        return c is not None and (c.low > 0 or c.high < 0)


LIST_COUNTS_SQL = """
SELECT r.campaign_id,
       count(*) FILTER (WHERE r.state IN ('sent', 'delivered', 'undelivered')),
       count(*) FILTER (WHERE r.state = 'delivered'),
       count(*) FILTER (WHERE r.state = 'failed')
  FROM {recipient} r WHERE r.campaign_id = ANY(%(ids)s)
 GROUP BY r.campaign_id
"""

LIST_CLICKS_SQL = """
SELECT l.campaign_id, count(*), count(DISTINCT k.recipient_id)
  FROM {click} k JOIN {link} l ON l.id = k.link_id
 WHERE l.campaign_id = ANY(%(ids)s)
 GROUP BY l.campaign_id
"""

# Buyers per campaign and group, each campaign over its own report window.
LIST_CONVERSION_SQL = """
WITH windows AS (
  SELECT w.id, w.start, w.stop
    FROM unnest(%(ids)s::bigint[], %(starts)s::timestamptz[], %(stops)s::timestamptz[]) AS w(id, start, stop)
),
buyers AS (
  SELECT DISTINCT w.id AS campaign_id, t.persona_id
    FROM windows w JOIN {transaction} t
      ON t.company_id = %(company)s AND t.status = %(completed)s
     AND t.occurred_at >= w.start AND t.occurred_at < w.stop AND t.persona_id IS NOT NULL
)
SELECT r.campaign_id, r."group", count(*), count(b.persona_id)
  FROM {recipient} r
  LEFT JOIN buyers b ON b.campaign_id = r.campaign_id AND b.persona_id = r.persona_id
 WHERE r.campaign_id IN (SELECT id FROM windows)
 GROUP BY r.campaign_id, r."group"
"""


def campaigns_list_figures(*, company, campaigns, now: dt.datetime | None = None,
                           using: str = "default") -> dict[int, ListFigures]:
    """Sent, delivered, failed, clicks and the conversion lift of each campaign, in three
    queries whatever their number. Campaigns of another company are left out."""
    now = now or timezone.now()
    campaigns = [c for c in campaigns if c.company_id == company.pk]
    figures = {c.pk: ListFigures() for c in campaigns}
    queued = [c for c in campaigns if c.queued_at is not None and c.queued_at < now]
    if not queued:
        return figures
    tables = _tables()
    ids = [c.pk for c in queued]
    params = {"ids": ids, "company": company.pk, "completed": TransactionStatus.COMPLETED,
              "starts": [c.queued_at for c in queued],
              "stops": [min(c.queued_at + dt.timedelta(days=c.report_days), now) for c in queued]}
    with connections[using].cursor() as cursor:
        cursor.execute(LIST_COUNTS_SQL.format(**tables), params)
        for campaign_id, sent, delivered, failed in cursor.fetchall():
            f = figures[campaign_id]
            f.sent, f.delivered, f.failed = sent, delivered, failed
        cursor.execute(LIST_CLICKS_SQL.format(**tables), params)
        for campaign_id, clicks, unique in cursor.fetchall():
            figures[campaign_id].clicks, figures[campaign_id].unique_clicks = clicks, unique
        cursor.execute(LIST_CONVERSION_SQL.format(**tables), params)
        for campaign_id, group, n, converters in cursor.fetchall():
            f = figures[campaign_id]
            if group == CampaignRecipient.Group.SEND:
                f.send_n, f.send_converters = n, converters
            else:
                f.holdout_n, f.holdout_converters = n, converters
    for f in figures.values():
        if f.send_n >= 2 and f.holdout_n >= 2:
            f.conversion_lift = _conversion_interval(GroupStats("send", f.send_n, f.send_converters),
                                                     GroupStats("holdout", f.holdout_n, f.holdout_converters))
    return figures


# --- each recipient's outcome (the CSV) ------------------------------------------------------

@dataclass
class OutcomeRow:
    persona_id: int
    name: str
    to: str
    group: str
    state: str
    sent_at: dt.datetime | None
    error_code: str
    error: str
    clicks: int
    converted: bool
    revenue: Decimal

    @property
    def group_label(self) -> str:
        return CampaignRecipient.Group(self.group).label

    @property
    def state_label(self) -> str:
        return State(self.state).label


OUTCOME_ROWS_SQL = """
WITH spend AS (
  SELECT t.persona_id, sum(t.total) AS revenue
    FROM {transaction} t
   WHERE t.company_id = %(company)s AND t.status = %(completed)s
     AND t.occurred_at >= %(start)s AND t.occurred_at < %(end)s
     AND t.persona_id IN (SELECT r.persona_id FROM {recipient} r WHERE r.campaign_id = %(campaign)s)
   GROUP BY t.persona_id
),
clicks AS (
  SELECT k.recipient_id, count(*) AS clicks
    FROM {click} k JOIN {link} l ON l.id = k.link_id
   WHERE l.campaign_id = %(campaign)s AND k.recipient_id IS NOT NULL
   GROUP BY k.recipient_id
)
SELECT r.persona_id, p.first_name, p.last_name, p.email, p.phone, r."to", r."group", r.state, r.sent_at,
       r.error_code, r.error, coalesce(c.clicks, 0), s.persona_id IS NOT NULL, coalesce(s.revenue, 0)
  FROM {recipient} r
  JOIN {persona} p ON p.id = r.persona_id
  LEFT JOIN spend s ON s.persona_id = r.persona_id
  LEFT JOIN clicks c ON c.recipient_id = r.id
 WHERE r.campaign_id = %(campaign)s AND p.company_id = %(company)s
 ORDER BY r.id
"""


def outcome_rows(*, campaign: Campaign, days: int | None = None, now: dt.datetime | None = None,
                 using: str = "default"):
    """Each recipient and held-out persona, in the order they were queued, read in batches
    from a server-side cursor (a generator: nothing is read until it is iterated)."""
    from loyalty.models import Persona

    days = campaign.report_days if days is None else days
    now = now or timezone.now()
    if campaign.queued_at is None:
        start = end = now
    else:
        start, end, _ = report_window(campaign, days, now)
    params = {"campaign": campaign.pk, "company": campaign.company_id, "start": start, "end": end,
              "completed": TransactionStatus.COMPLETED}
    sql = OUTCOME_ROWS_SQL.format(**_tables(), persona=Persona._meta.db_table)
    conn = connections[using]
    server_side = not conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    with conn.chunked_cursor() if server_side else conn.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(2000):
            for (persona_id, first, last, email, phone, to, group, state, sent_at, error_code, error, clicks,
                 converted, revenue) in batch:
                name = f"{first} {last}".strip() or email or phone or f"Persona #{persona_id}"
                yield OutcomeRow(persona_id, name, to, group, state, sent_at, error_code, error, clicks,
                                 converted, Decimal(revenue).quantize(CENT))
