"""A campaign's report: what became of its messages, opt-outs, clicks, and the lift of the
people picked to receive it over the people held out."""

import datetime as dt
import math
import statistics
from decimal import ROUND_HALF_UP, Decimal

import pytest

from campaigns.models import InboundMessage
from campaigns.report import campaign_report, campaigns_list_figures, t_quantile, welch_interval
from loyalty.models import ConsentRecord
from tests.campaigns.report_data import QUEUED_AT, campaign_make, click, recipient_add, sale
from tests.factories import PersonaFactory

DAY = dt.timedelta(days=1)
LATER = QUEUED_AT + 30 * DAY  # the whole window is in the past


# --- Student's t and Welch ---------------------------------------------------------------------

@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042),
                                          (120, 1.980), (1000, 1.962)])
def test_t_quantile_matches_the_tables(df, expected):
    assert round(t_quantile(0.975, df), 3) == expected


def test_t_quantile_other_levels_and_fractional_df():
    assert round(t_quantile(0.95, 10), 3) == 1.812
    assert round(t_quantile(0.995, 20), 3) == 2.845
    # Between the whole degrees of freedom around it.
    assert t_quantile(0.975, 10) > t_quantile(0.975, 10.5) > t_quantile(0.975, 11)
    assert round(t_quantile(0.975, 1e6), 3) == 1.960


def test_welch_interval_by_hand():
    a, b = [3.0, 5.0, 9.0, 1.0], [2.0, 2.5, 0.0, 1.0, 4.0]
    ma, mb, va, vb = statistics.mean(a), statistics.mean(b), statistics.variance(a), statistics.variance(b)
    interval = welch_interval(ma, va, len(a), mb, vb, len(b))
    se = math.sqrt(va / 4 + vb / 5)
    df = se**4 / ((va / 4) ** 2 / 3 + (vb / 5) ** 2 / 4)
    assert interval.df == pytest.approx(df)
    assert round(df, 3) == 3.947  # (35/12 + 0.46)² ÷ ((35/12)²/3 + 0.46²/4)
    assert interval.low == pytest.approx(ma - mb - t_quantile(0.975, df) * se)
    assert interval.high == pytest.approx(ma - mb + t_quantile(0.975, df) * se)
    # t for 3.947 df is a little above the table's 2.776 for 4.
    assert 2.776 < t_quantile(0.975, df) < 2.8


# --- message outcomes ------------------------------------------------------------------------

def test_counts_by_state(company):
    campaign = campaign_make(company)
    for state, count in [("pending", 2), ("claimed", 1), ("sent", 3), ("delivered", 4), ("undelivered", 1),
                         ("failed", 2), ("skipped", 1), ("cancelled", 1)]:
        for _ in range(count):
            recipient_add(campaign, state=state)
    for _ in range(3):
        recipient_add(campaign, group="holdout")
    o = campaign_report(campaign=campaign, now=LATER).outcomes
    assert (o.queued, o.sent, o.delivered, o.undelivered, o.failed, o.skipped, o.waiting, o.cancelled,
            o.held_out) == (15, 8, 4, 1, 2, 1, 3, 1, 3)
    assert o.delivery_rate == Decimal("50.0")


def test_opt_outs_are_recipients_who_stopped_after_it_was_queued(company, other_company):
    campaign = campaign_make(company, channel="sms")
    texted, withdrew, early, emailed, unrelated = (recipient_add(campaign) for _ in range(5))
    held = recipient_add(campaign, group="holdout")
    after, before = QUEUED_AT + dt.timedelta(hours=2), QUEUED_AT - dt.timedelta(hours=2)

    def stop(persona, when, company=company):
        InboundMessage.objects.create(company=company, provider_id=f"m{InboundMessage.objects.count()}",
                                      sender=persona.phone, body="STOP", keyword="stop", persona=persona,
                                      received_at=when)

    def withdraw(persona, channel, when):
        ConsentRecord.objects.create(company=company, persona=persona, channel=channel, granted=False,
                                     wording="Texts from Green Leaf", created_at=when)

    stop(texted.persona, after)
    withdraw(texted.persona, "sms", after)  # the same person twice: once
    withdraw(withdrew.persona, "sms", after)
    stop(early.persona, before)  # before the campaign
    stop(held.persona, after)  # got no message
    withdraw(emailed.persona, "email", after)  # another channel
    InboundMessage.objects.create(company=company, provider_id="help", sender=unrelated.persona.phone,
                                  body="HELP", keyword="help", persona=unrelated.persona, received_at=after)
    assert campaign_report(campaign=campaign, now=LATER).outcomes.opted_out == 2


def test_email_opt_outs_count_email_unsubscribes_only(company):
    campaign = campaign_make(company, channel="email")
    a, b = recipient_add(campaign), recipient_add(campaign)
    ConsentRecord.objects.create(company=company, persona=a.persona, channel="email", granted=False,
                                 wording="Emails", created_at=QUEUED_AT + DAY)
    ConsentRecord.objects.create(company=company, persona=b.persona, channel="email", granted=True,
                                 wording="Emails", created_at=QUEUED_AT + DAY)
    InboundMessage.objects.create(company=company, provider_id="x", sender=b.persona.phone, body="STOP",
                                  keyword="stop", persona=b.persona, received_at=QUEUED_AT + DAY)
    assert campaign_report(campaign=campaign, now=LATER).outcomes.opted_out == 1


def test_unique_and_total_clicks(company):
    campaign = campaign_make(company)
    other = campaign_make(company, name="Other")
    a, b, c = (recipient_add(campaign, state="delivered") for _ in range(3))
    recipient_add(campaign, state="failed")
    click(campaign, a)
    click(campaign, a)
    click(campaign, a, url="https://example.com/menu")
    click(campaign, b)
    click(campaign, None)  # a click we can't tie to a recipient (a forwarded link)
    click(other, recipient_add(other))
    o = campaign_report(campaign=campaign, now=LATER).outcomes
    assert (o.clicks, o.unique_clicks, o.sent) == (5, 2, 3)
    assert o.click_rate == Decimal("66.7")


# --- the lift ----------------------------------------------------------------------------------

def _lift_campaign(company, other_company, *, holdout=True):
    """Five recipients and four held out, each with what they spent in the window."""
    campaign = campaign_make(company)
    send_spend = [[Decimal("10.00")], [], [Decimal("20.00"), Decimal("5.50")], [], [Decimal("40.00")]]
    hold_spend = [[], [Decimal("12.00")], [], []] if holdout else []
    people = {}
    for group, spends in (("send", send_spend), ("holdout", hold_spend)):
        for i, totals in enumerate(spends):
            state = "held_out" if group == "holdout" else ("failed" if i == 1 else "delivered")
            r = recipient_add(campaign, group=group, state=state)
            people[(group, i)] = r.persona
            for j, total in enumerate(totals):
                sale(r.persona, total, QUEUED_AT + dt.timedelta(hours=5 + j))
    noise = people[("send", 1)]  # buys nothing that counts:
    sale(noise, "99", QUEUED_AT - dt.timedelta(minutes=1))  # before it was queued
    sale(noise, "99", QUEUED_AT + 7 * DAY)  # the first moment after the window
    sale(noise, "99", QUEUED_AT + DAY, status="voided")
    sale(noise, "99", QUEUED_AT + DAY, status="refunded")
    sale(noise, "99", QUEUED_AT + DAY, company=other_company)
    sale(PersonaFactory(company=company), "99", QUEUED_AT + DAY)  # not in the campaign
    sale(people[("send", 0)], "0.50", QUEUED_AT + 7 * DAY - dt.timedelta(seconds=1))  # the last moment in
    return campaign, [10.5, 0, 25.5, 0, 40], ([0, 12, 0, 0] if holdout else [])


def test_lift_and_its_welch_interval(company, other_company):
    campaign, send, hold = _lift_campaign(company, other_company)
    report = campaign_report(campaign=campaign, now=LATER)
    s, h = report.send, report.holdout
    assert (s.n, s.converters, h.n, h.converters) == (5, 3, 4, 1)
    assert s.revenue == Decimal("76.00") and h.revenue == Decimal("12.00")
    assert s.revenue_per_person == Decimal("15.20") and h.revenue_per_person == Decimal("3.00")
    assert s.revenue_var == pytest.approx(statistics.variance(send))
    assert h.revenue_var == pytest.approx(statistics.variance(hold))
    assert (s.conversion_percent, h.conversion_percent) == (Decimal("60.0"), Decimal("25.0"))

    v1, v2 = statistics.variance(send) / 5, statistics.variance(hold) / 4
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 4 + v2**2 / 3)
    margin = t_quantile(0.975, df) * se
    lift = report.lift
    assert lift.revenue.difference == pytest.approx(12.2)
    assert lift.revenue.df == pytest.approx(df)
    assert lift.revenue.low == pytest.approx(12.2 - margin)
    assert lift.revenue.high == pytest.approx(12.2 + margin)
    assert lift.incremental_revenue == Decimal("61.00")  # 12.20 × 5

    conv_s, conv_h = [1, 0, 1, 0, 1], [0, 1, 0, 0]
    c1, c2 = statistics.variance(conv_s) / 5, statistics.variance(conv_h) / 4
    c_df = (c1 + c2) ** 2 / (c1**2 / 4 + c2**2 / 3)
    c_margin = t_quantile(0.975, c_df) * math.sqrt(c1 + c2)
    assert lift.conversion.difference == pytest.approx(0.35)
    assert lift.conversion.low == pytest.approx(0.35 - c_margin)

    text = report.lift_text
    low, high = (Decimal(str(x)).quantize(Decimal("0.01"), ROUND_HALF_UP)
                 for x in (12.2 - margin, 12.2 + margin))
    assert text.startswith("Recipients spent $12.20 more per person than the holdout over 7 days")
    assert f"(95% confidence: −${abs(low)} to ${high})" in text
    assert "the interval includes $0, so the campaign may have made no difference" in text


def test_every_recipient_counts_whatever_became_of_the_message(company, other_company):
    """Intention to treat: the failed recipient is in the "send" group's 5."""
    campaign, _, _ = _lift_campaign(company, other_company)
    report = campaign_report(campaign=campaign, now=LATER)
    assert report.outcomes.failed == 1 and report.send.n == 5


def test_a_shorter_window_counts_fewer_sales(company, other_company):
    campaign, _, _ = _lift_campaign(company, other_company)
    report = campaign_report(campaign=campaign, days=1, now=LATER)
    # The 0.50 on the last moment of day 7 is out; everything else was within 6 hours.
    assert report.send.revenue == Decimal("75.50")
    assert report.window_text == "1 day"


def test_window_clipped_at_now(company, other_company):
    campaign, _, _ = _lift_campaign(company, other_company)
    now = QUEUED_AT + dt.timedelta(hours=5, minutes=30)  # the 5.50 at 06:00 has not happened yet
    report = campaign_report(campaign=campaign, now=now)
    assert report.end == now and not report.complete
    assert report.send.revenue == Decimal("70.00")
    assert report.window_text == "the first 1 day so far (of 7)"
    assert "over the first 1 day so far (of 7)" in report.lift_text


def test_no_holdout_no_lift(company, other_company):
    campaign, _, _ = _lift_campaign(company, other_company, holdout=False)
    report = campaign_report(campaign=campaign, now=LATER)
    assert report.holdout.n == 0 and report.send.n == 5
    assert report.lift.revenue is None and report.lift.incremental_revenue is None
    assert report.lift_text == "No holdout group: lift can't be measured."


def test_a_one_person_holdout_gives_no_interval(company):
    campaign = campaign_make(company)
    for _ in range(3):
        recipient_add(campaign)
    recipient_add(campaign, group="holdout")
    report = campaign_report(campaign=campaign, now=LATER)
    assert report.lift.revenue is None
    assert report.lift_text == "Each group needs at least two people to measure a lift."


def test_nobody_bought_anything(company):
    campaign = campaign_make(company)
    for group in ("send", "send", "holdout", "holdout"):
        recipient_add(campaign, group=group)
    report = campaign_report(campaign=campaign, now=LATER)
    assert report.lift.revenue.difference == 0 and report.lift.revenue.df is None
    assert report.lift_text.startswith("Recipients spent the same per person as the holdout over 7 days")


def test_a_clear_lift_says_so(company):
    campaign = campaign_make(company)
    for spend in ("50", "60", "55", "52"):
        sale(recipient_add(campaign).persona, spend, QUEUED_AT + DAY)
    for spend in ("1", "2", "0.5"):
        sale(recipient_add(campaign, group="holdout").persona, spend, QUEUED_AT + DAY)
    text = campaign_report(campaign=campaign, now=LATER).lift_text
    assert "the whole interval is above $0, so the campaign most likely raised spending" in text


def test_money_in_the_company_currency(company):
    company.currency = "EUR"
    company.save()
    campaign = campaign_make(company)
    for spend in ("50", "60"):
        sale(recipient_add(campaign).persona, spend, QUEUED_AT + DAY)
    for spend in ("1", "2"):
        sale(recipient_add(campaign, group="holdout").persona, spend, QUEUED_AT + DAY)
    assert campaign_report(campaign=campaign, now=LATER).lift_text.startswith(
        "Recipients spent €53.50 more per person")


def test_not_queued_yet(company):
    campaign = campaign_make(company, queued_at=None, status="draft")
    report = campaign_report(campaign=campaign, now=LATER)
    assert not report.queued and report.outcomes.sent == 0
    assert report.lift_text == "Not sent yet: there is nothing to compare."


# --- the campaigns list ------------------------------------------------------------------------

def _list_campaign(company, name, *, sent, failed, holdout, buyers):
    campaign = campaign_make(company, name=name)
    recipients = [recipient_add(campaign, state="delivered") for _ in range(sent)]
    recipients += [recipient_add(campaign, state="failed") for _ in range(failed)]
    held = [recipient_add(campaign, group="holdout") for _ in range(holdout)]
    for r in recipients[:buyers]:
        sale(r.persona, "20", QUEUED_AT + DAY)
    for r in recipients[: min(2, sent)]:
        click(campaign, r)
    if recipients:
        click(campaign, recipients[0])
    return campaign, held


def test_list_figures(company, other_company):
    a, held = _list_campaign(company, "A", sent=4, failed=1, holdout=3, buyers=3)
    sale(held[0].persona, "5", QUEUED_AT + DAY)
    sale(held[1].persona, "5", QUEUED_AT + 8 * DAY)  # after A's 7 days
    b, _ = _list_campaign(company, "B", sent=2, failed=0, holdout=0, buyers=1)
    draft = campaign_make(company, name="Draft", queued_at=None, status="draft")
    figures = campaigns_list_figures(company=company, campaigns=[a, b, draft], now=LATER)
    fa, fb = figures[a.pk], figures[b.pk]
    assert (fa.sent, fa.delivered, fa.failed, fa.clicks, fa.unique_clicks) == (4, 4, 1, 3, 2)
    assert (fa.send_n, fa.send_converters, fa.holdout_n, fa.holdout_converters) == (5, 3, 3, 1)
    assert fa.conversion_lift.difference == pytest.approx(3 / 5 - 1 / 3)
    assert fa.conversion_lift_text == "+26.7 points"
    assert fb.conversion_lift is None and fb.conversion_lift_text == "—"
    assert figures[draft.pk].sent == 0
    # Another company's campaign is not read.
    theirs, _ = _list_campaign(other_company, "Theirs", sent=2, failed=0, holdout=2, buyers=1)
    assert theirs.pk not in campaigns_list_figures(company=company, campaigns=[a, theirs], now=LATER)


def test_list_figures_in_a_bounded_number_of_queries(company, django_assert_max_num_queries):
    campaigns = [_list_campaign(company, f"C{i}", sent=3, failed=1, holdout=2, buyers=1)[0] for i in range(8)]
    with django_assert_max_num_queries(3):
        figures = campaigns_list_figures(company=company, campaigns=campaigns, now=LATER)
    assert all(figures[c.pk].sent == 3 for c in campaigns)
    with django_assert_max_num_queries(3):
        campaigns_list_figures(company=company, campaigns=campaigns[:2], now=LATER)


def test_ranges_stay_within_what_is_possible(company):
    """Two people a group: the conversion range stops at ±100 points, and no group's average
    range goes below $0 (nobody spends less than nothing)."""
    from campaigns.charts import revenue_chart

    campaign = campaign_make(company)
    sale(recipient_add(campaign).persona, "30", QUEUED_AT + DAY)
    recipient_add(campaign)
    recipient_add(campaign, group="holdout")
    recipient_add(campaign, group="holdout")
    report = campaign_report(campaign=campaign, now=LATER)
    assert (report.lift.conversion.low, report.lift.conversion.high) == (-1.0, 1.0)
    assert report.lift.revenue.low < -100  # a difference may be negative
    rows = revenue_chart(report, "USD").rows
    assert rows[0][:4] == ["Recipient", 2, Decimal("30.00"), Decimal("15.00")]
    assert rows[0][4] == Decimal("0.00") and rows[0][5] > Decimal("100")
