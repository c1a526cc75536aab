"""Reads for campaign pages and the send loop."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils import timezone

from members.models import LoyaltyPageSettings

from .models import Campaign, CampaignRecipient, Channel, MessagingSettings

# Why an audience member does not receive, in the order they are checked: a persona left
# out for several reasons counts under the first.
EXCLUSION_REASONS = {
    "no_consent": "no {channel} consent",
    "under_age": "under the minimum age",
    "no_contact": "no valid {contact}",
    "duplicate_contact": "same {contact} as another customer",
    "over_cap": "over the frequency cap",
}


def messaging_settings(*, company) -> MessagingSettings:
    settings_row, _ = MessagingSettings.objects.get_or_create(company=company)
    return settings_row


def campaigns_list(*, company) -> QuerySet[Campaign]:
    return Campaign.objects.filter(company=company).select_related("audience")


def campaign_get(*, company, campaign_id) -> Campaign:
    campaign = (Campaign.objects.filter(company=company, pk=campaign_id)
                .select_related("audience", "company").first())
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


@dataclass
class Progress:
    total: int
    waiting: int
    sending: int
    sent: int  # accepted by the provider, whatever came of it since
    delivered: int
    undelivered: int
    failed: int
    skipped: int
    cancelled: int
    held_out: int

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.cancelled

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


def campaign_progress(*, campaign: Campaign) -> Progress:
    counts = dict(CampaignRecipient.objects.filter(campaign=campaign).values_list("state")
                  .annotate(n=Count("id")).values_list("state", "n"))
    s = CampaignRecipient.State
    return Progress(
        total=sum(n for state, n in counts.items() if state != s.HELD_OUT),
        waiting=counts.get(s.PENDING, 0), sending=counts.get(s.CLAIMED, 0),
        sent=counts.get(s.SENT, 0) + counts.get(s.DELIVERED, 0) + counts.get(s.UNDELIVERED, 0),
        delivered=counts.get(s.DELIVERED, 0), undelivered=counts.get(s.UNDELIVERED, 0),
        failed=counts.get(s.FAILED, 0), skipped=counts.get(s.SKIPPED, 0),
        cancelled=counts.get(s.CANCELLED, 0), held_out=counts.get(s.HELD_OUT, 0))


def _age_rules(company) -> tuple[int, dict]:
    page = LoyaltyPageSettings.objects.filter(company=company).first()
    if page is None:
        return 21, {}
    return page.minimum_age, {str(k).upper(): int(v) for k, v in (page.minimum_ages or {}).items()}


PHONE_OK = r"^\+[1-9][0-9]{6,14}$"
EMAIL_OK = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def eligibility_sql(*, campaign: Campaign, rules: MessagingSettings, now=None) -> tuple[str, dict]:
    """SELECT persona_id, "to", time_zone, reason for every member of the campaign's audience
    (reason NULL: will receive), as the campaign would be queued now. One statement, set-wise:
    it runs over a million members in seconds."""
    now = now or timezone.now()
    sms = campaign.channel == Channel.SMS
    minimum_age, minimum_ages = _age_rules(campaign.company)
    cap_count = rules.sms_cap_count if sms else rules.email_cap_count
    cap_days = rules.sms_cap_days if sms else rules.email_cap_days
    contact = "p.phone" if sms else "lower(p.email)"
    sql = f"""
        WITH members AS (
            SELECT p.id, {contact} AS contact, p.{'sms_opt_in' if sms else 'email_opt_in'} AS consent,
                   p.birth_date, upper(p.market) AS market,
                   COALESCE(NULLIF(s.timezone, ''), %(company_tz)s) AS tz
            FROM audiences_audiencemember m
            JOIN loyalty_persona p ON p.id = m.persona_id AND p.company_id = %(company)s
            LEFT JOIN stores_retailstore s ON s.id = p.favourite_store_id
            WHERE m.audience_id = %(audience)s
        ), recent AS (
            SELECT r.persona_id, count(*) AS n
            FROM campaigns_campaignrecipient r
            JOIN campaigns_campaign c ON c.id = r.campaign_id
            WHERE c.company_id = %(company)s AND c.channel = %(channel)s AND c.id <> %(campaign)s
              AND r.sent_at >= %(cap_since)s
            GROUP BY r.persona_id
        ), checked AS (
            SELECT m.id, m.contact, m.tz, CASE
                WHEN NOT m.consent THEN 'no_consent'
                WHEN m.birth_date IS NOT NULL AND m.birth_date > (
                    (%(now)s::timestamptz AT TIME ZONE m.tz)::date
                    - make_interval(years => COALESCE((%(ages)s::jsonb ->> m.market)::int, %(minimum_age)s))
                )::date THEN 'under_age'
                WHEN m.contact IS NULL OR m.contact !~ %(contact_ok)s THEN 'no_contact'
                WHEN COALESCE(recent.n, 0) >= %(cap_count)s THEN 'over_cap'
            END AS reason
            FROM members m LEFT JOIN recent ON recent.persona_id = m.id
        )
        SELECT id AS persona_id, contact AS "to", tz AS time_zone,
               CASE WHEN reason IS NULL
                     AND row_number() OVER (PARTITION BY reason IS NULL, contact ORDER BY id) > 1
                    THEN 'duplicate_contact' ELSE reason END AS reason
        FROM checked
    """
    params = {"company": campaign.company_id, "company_tz": campaign.company.timezone,
              "audience": campaign.audience_id, "channel": campaign.channel, "campaign": campaign.pk or 0,
              "cap_since": now - timezone.timedelta(days=cap_days), "cap_count": cap_count, "now": now,
              "ages": json.dumps(minimum_ages), "minimum_age": minimum_age,
              "contact_ok": PHONE_OK if sms else EMAIL_OK}
    return sql, params


@dataclass
class Eligibility:
    audience: int
    receive: int
    holdout: int
    exclusions: dict[str, int]

    def reasons(self, channel: str) -> list[tuple[str, int]]:
        """("no SMS consent", 2000), ... for the page, in the checking order."""
        words = {"channel": "SMS" if channel == Channel.SMS else "email",
                 "contact": "mobile number" if channel == Channel.SMS else "email address"}
        return [(EXCLUSION_REASONS[key].format(**words), self.exclusions[key])
                for key in EXCLUSION_REASONS if self.exclusions.get(key)]


def holdout_size(eligible: int, percent: int) -> int:
    return (eligible * percent + 50) // 100


def campaign_eligibility(*, campaign: Campaign, now=None) -> Eligibility:
    """Who the campaign would reach if it were sent now: the audience's last calculation,
    minus each exclusion. The send itself recalculates the audience first."""
    if campaign.audience_id is None:
        return Eligibility(audience=0, receive=0, holdout=0, exclusions={})
    rules = messaging_settings(company=campaign.company)
    sql, params = eligibility_sql(campaign=campaign, rules=rules, now=now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT reason, count(*) FROM ({sql}) e GROUP BY reason", params)
        counts = dict(cursor.fetchall())
    eligible = counts.pop(None, 0)
    holdout = holdout_size(eligible, campaign.holdout_percent)
    return Eligibility(audience=eligible + sum(counts.values()), receive=eligible - holdout, holdout=holdout,
                       exclusions=counts)
