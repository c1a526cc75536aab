"""Campaign actions: save a draft, send (now or at a time), pause, resume, cancel, and the
send loop the workers run.

Sending is two steps. `campaign_queue` recalculates the audience and writes one
CampaignRecipient per member, in one transaction: excluded members are only counted, the
holdout is drawn and kept out, and each recipient's `due_at` is the start of their next
allowed hours. Then `campaign_send_batch` (Celery, any number of workers at once) claims
due rows with FOR UPDATE SKIP LOCKED, marks them "claimed" and commits before calling the
provider, and stores the provider's id after. A row is claimed once, so a persona never
gets a campaign twice: a worker killed mid-batch leaves its claimed rows, which are
marked failed ("interrupted") after a lease instead of being sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from audiences.models import Audience
from audiences.services import AudienceRefused, audience_refresh
from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError
from stores.models import RetailStore

from . import compose, hooks
from .models import Campaign, CampaignRecipient, Channel, MessagingSettings
from .selectors import eligibility_sql, holdout_size, messaging_settings
from .senders import EmailSender, NotSent, SmsSender

log = logging.getLogger(__name__)

# Claimed at a time: a few seconds' sending, so a worker that dies leaves few messages in
# doubt (and those Twilio took come back through their status callbacks).
BATCH_SIZE = 250
SEND_THREADS = 50  # messages in flight at once
MAX_ATTEMPTS = 4
RETRY_BASE_SECONDS = 30
# A claimed row with no outcome after this long belongs to a worker that died.
CLAIM_LEASE = timedelta(minutes=5)
INTERRUPTED = ("interrupted", "The sender stopped while sending this message. It was not sent again, "
               "so that nobody gets it twice; it may or may not have arrived.")
S = CampaignRecipient.State


class CampaignRefused(DomainError):
    code = "campaign_refused"
    status = 409


# --- drafts ---------------------------------------------------------------------------------------------

EDITABLE_FIELDS = ("name", "channel", "audience", "sms_body", "email_subject", "email_preheader",
                   "email_template", "email_body", "email_button_text", "email_button_url", "holdout_percent",
                   "scheduled_at", "report_days")


def _check_content(campaign: Campaign) -> None:
    rules = messaging_settings(company=campaign.company)
    if campaign.channel == Channel.SMS:
        compose.sms_check(campaign.sms_body, rules.opt_out_line, sample_values=compose.LONGEST_VALUES)
    else:
        compose.email_check(subject=campaign.email_subject, preheader=campaign.email_preheader,
                            body=campaign.email_body, button_text=campaign.email_button_text,
                            button_url=campaign.email_button_url, template=campaign.email_template)


@transaction.atomic
def campaign_save(*, company, audit: AuditContext | None, campaign: Campaign | None = None, user=None,
                  **fields) -> Campaign:
    """Create or change a draft (or a scheduled campaign that has not started)."""
    if campaign is not None:
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk, company=company)
        if not campaign.is_editable:
            raise CampaignRefused("This campaign has started: it can no longer be changed.")
    else:
        creator = user if getattr(user, "is_authenticated", False) else None
        campaign = Campaign(company=company, created_by=creator)
    audience = fields.get("audience")
    if audience is not None and audience.company_id != company.pk:
        raise DomainError("Pick an audience.", code="invalid_audience", extra={"field": "audience"})
    for name in EDITABLE_FIELDS:
        if name in fields:
            setattr(campaign, name, fields[name])
    if Campaign.objects.filter(company=company, name=campaign.name).exclude(pk=campaign.pk).exists():
        raise DomainError(f"A campaign named “{campaign.name}” exists already.", code="duplicate_name",
                          extra={"field": "name"})
    _check_content(campaign)
    created = campaign.pk is None
    campaign.full_clean(exclude=["company", "created_by", "audience"])
    campaign.save()
    audit_record(audit=audit, company=company, kind="campaign.created" if created else "campaign.updated",
                 obj=campaign, extra={"channel": campaign.channel, "audience": str(campaign.audience or "")})
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign, audit: AuditContext | None) -> None:
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    # Cancelled before anything went out is deletable; anything sent is kept for its report.
    if (campaign.status not in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED, Campaign.Status.CANCELLED)
            or campaign.recipients.exclude(state__in=[S.CANCELLED, S.HELD_OUT]).exists()):
        raise CampaignRefused("A campaign that has sent messages is kept, for its report.")
    audit_record(audit=audit, company=campaign.company_id, kind="campaign.deleted", obj=campaign)
    campaign.delete()


MESSAGING_FIELDS = ("sms_cap_count", "sms_cap_days", "email_cap_count", "email_cap_days",
                    "send_window_start", "send_window_end", "opt_out_line", "sms_segment_price",
                    "email_from_name", "postal_address")


@transaction.atomic
def messaging_settings_update(*, company, audit: AuditContext | None, **fields) -> MessagingSettings:
    """Settings › Messaging (admins): caps, allowed hours, the opt-out line, the price per segment."""
    messaging_settings(company=company)
    rules = MessagingSettings.objects.select_for_update().get(company=company)
    before = audit_snapshot(rules, MESSAGING_FIELDS)
    for name in MESSAGING_FIELDS:
        if name in fields:
            setattr(rules, name, fields[name])
    rules.full_clean(exclude=["company"])
    rules.save()
    audit_record(audit=audit, company=company, kind="messaging_settings.updated", obj=rules, if_changed=True,
                 changes=audit_changes(before, audit_snapshot(rules, MESSAGING_FIELDS)))
    return rules


# --- sending --------------------------------------------------------------------------------------------

def campaign_send(*, campaign: Campaign, audit: AuditContext | None, now: datetime | None = None) -> Campaign:
    """"Send" on the page: at its scheduled time if it has one in the future, else now.
    A second click (or a second tab) finds it scheduled or sending and changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Campaign.Status.DRAFT:
            # Scheduled for now or earlier: another click is queueing it this moment.
            queueing = locked.status == Campaign.Status.SCHEDULED and locked.scheduled_at <= timezone.now()
            status = "sending" if queueing else locked.get_status_display().lower()
            raise CampaignRefused(f"This campaign is already {status}.")
        if locked.audience_id is None:
            raise DomainError("Pick an audience to send to.", code="invalid_audience",
                              extra={"field": "audience"})
        _check_content(locked)
        if locked.scheduled_at and locked.scheduled_at > now:
            locked.status = Campaign.Status.SCHEDULED
            locked.save(update_fields=["status", "updated_at"])
            audit_record(audit=audit, company=locked.company_id, kind="campaign.scheduled", obj=locked,
                         extra={"at": locked.scheduled_at.isoformat()})
            return locked
        locked.status = Campaign.Status.SCHEDULED
        locked.scheduled_at = now
        locked.save(update_fields=["status", "scheduled_at", "updated_at"])
    campaign = campaign_queue(campaign_id=campaign.pk, now=now)
    audit_record(audit=audit, company=campaign.company_id, kind="campaign.sent", obj=campaign,
                 extra={"recipients": campaign.recipient_count, "holdout": campaign.holdout_count,
                        "excluded": campaign.exclusions})
    return campaign


def campaign_queue(*, campaign_id: int, now: datetime | None = None) -> Campaign:
    """Recalculate the audience and write the campaign's recipients; then the workers send.
    Runs for a scheduled campaign whose time has come; does nothing to any other."""
    now = now or timezone.now()
    campaign = Campaign.objects.select_related("company", "audience").get(pk=campaign_id)
    if campaign.status != Campaign.Status.SCHEDULED:
        return campaign
    if campaign.audience is not None and campaign.audience.kind == Audience.Kind.RULES:
        try:
            audience_refresh(audience=campaign.audience, now=now)
        except AudienceRefused as exc:
            log.warning("campaign %s: audience %s not recalculated (%s); its last members are used",
                        campaign.pk, campaign.audience_id, exc.message)
    rules = messaging_settings(company=campaign.company)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().select_related("company").get(pk=campaign_id)
        if campaign.status != Campaign.Status.SCHEDULED:
            return campaign
        counts = _recipients_write(campaign, rules, now) if campaign.audience_id else {}
        eligible = counts.pop(None, 0)
        holdout = holdout_size(eligible, campaign.holdout_percent)
        campaign.audience_size = eligible + sum(counts.values())
        campaign.recipient_count, campaign.holdout_count = eligible - holdout, holdout
        campaign.exclusions = counts
        campaign.status, campaign.queued_at = Campaign.Status.SENDING, now
        campaign.save()
    from .tasks import campaign_send_batch_task

    transaction.on_commit(lambda: _enqueue(campaign_send_batch_task, campaign.pk))
    return campaign


def _enqueue(task, campaign_id: int, countdown: float | None = None) -> None:
    try:
        task.apply_async((campaign_id,), countdown=countdown)
    except Exception:  # noqa: BLE001 - broker away: the minute tick queues it again
        log.warning("campaign %s: send task not queued; the next tick will", campaign_id, exc_info=True)


def _recipients_write(campaign: Campaign, rules, now: datetime) -> dict:
    """Insert one row per eligible member (recipient or holdout); the count per exclusion
    reason (None: eligible). The holdout is the first holdout_size(eligible) members in an
    order drawn from md5(campaign, persona): random, and the same if the statement reruns."""
    sql, params = eligibility_sql(campaign=campaign, rules=rules, now=now)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("DROP TABLE IF EXISTS campaign_eligibility")
        cursor.execute(f"CREATE TEMP TABLE campaign_eligibility ON COMMIT DROP AS {sql}", params)
        cursor.execute("SELECT reason, count(*) FROM campaign_eligibility GROUP BY reason")
        counts = dict(cursor.fetchall())
        holdout = holdout_size(counts.get(None, 0), campaign.holdout_percent)
        cursor.execute(f"""
            INSERT INTO campaigns_campaignrecipient
                (campaign_id, persona_id, "group", "to", time_zone, due_at, state, attempts,
                 provider_id, error_code, error)
            SELECT %(campaign)s, e.persona_id,
                   CASE WHEN e.rank <= %(holdout)s THEN 'holdout' ELSE 'send' END, e."to", e.time_zone,
                   {_NEXT_ALLOWED.format(now="%(now)s::timestamptz", tz="e.time_zone")},
                   CASE WHEN e.rank <= %(holdout)s THEN 'held_out' ELSE 'pending' END, 0, '', '', ''
            FROM (SELECT persona_id, "to", time_zone,
                         row_number() OVER (
                             ORDER BY md5(%(campaign)s::text || ':' || persona_id::text)) AS rank
                  FROM campaign_eligibility WHERE reason IS NULL) e
            ON CONFLICT (campaign_id, persona_id) DO NOTHING
        """, {"campaign": campaign.pk, "holdout": holdout, "now": now, "start": rules.send_window_start,
              "end": rules.send_window_end})
    return counts


# The next moment inside the allowed hours in a time zone: now if it is inside, else the
# start of today's or tomorrow's window there.
_NEXT_ALLOWED = """CASE
    WHEN ({now} AT TIME ZONE {tz})::time < %(start)s::time
        THEN (({now} AT TIME ZONE {tz})::date + %(start)s::time) AT TIME ZONE {tz}
    WHEN ({now} AT TIME ZONE {tz})::time >= %(end)s::time
        THEN (({now} AT TIME ZONE {tz})::date + 1 + %(start)s::time) AT TIME ZONE {tz}
    ELSE {now} END"""


def _status_set(campaign_id: int, *, allowed: tuple, to: str, audit, kind: str) -> Campaign:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.status not in allowed:
            raise CampaignRefused(f"This campaign is {campaign.get_status_display().lower()}.")
        campaign.status = to
        if to == Campaign.Status.CANCELLED:
            campaign.finished_at = timezone.now()
            campaign.recipients.filter(state=S.PENDING).update(state=S.CANCELLED)
        campaign.save()
        audit_record(audit=audit, company=campaign.company_id, kind=kind, obj=campaign)
    return campaign


def campaign_pause(*, campaign: Campaign, audit: AuditContext | None) -> Campaign:
    """Workers stop after the batch in hand; nothing waiting is sent until resumed."""
    return _status_set(campaign.pk, allowed=(Campaign.Status.SENDING,), to=Campaign.Status.PAUSED,
                       audit=audit, kind="campaign.paused")


def campaign_resume(*, campaign: Campaign, audit: AuditContext | None) -> Campaign:
    campaign = _status_set(campaign.pk, allowed=(Campaign.Status.PAUSED,), to=Campaign.Status.SENDING,
                           audit=audit, kind="campaign.resumed")
    from .tasks import campaign_send_batch_task

    _enqueue(campaign_send_batch_task, campaign.pk)
    return campaign


def campaign_cancel(*, campaign: Campaign, audit: AuditContext | None) -> Campaign:
    """Scheduled: it never goes. Sending or paused: the messages not yet sent are cancelled."""
    return _status_set(campaign.pk, allowed=(Campaign.Status.SCHEDULED, Campaign.Status.SENDING,
                                             Campaign.Status.PAUSED),
                       to=Campaign.Status.CANCELLED, audit=audit, kind="campaign.cancelled")


# --- the send loop ---------------------------------------------------------------------------------------

def _interrupted_close(campaign_id: int, now: datetime) -> int:
    return (CampaignRecipient.objects
            .filter(campaign_id=campaign_id, state=S.CLAIMED, claimed_at__lt=now - CLAIM_LEASE)
            .update(state=S.FAILED, error_code=INTERRUPTED[0], error=INTERRUPTED[1]))


def _zones_out_of_hours(company, rules, now: datetime) -> list[str]:
    """The time zones a recipient of the company can be in (its own and its stores') where
    it is outside the allowed hours now."""
    zones = {company.timezone, *RetailStore.objects.filter(company=company).exclude(timezone="")
             .values_list("timezone", flat=True)}
    start, end = rules.send_window_start, rules.send_window_end
    return sorted(zone for zone in zones if not start <= now.astimezone(ZoneInfo(zone)).time() < end)


def _out_of_hours_defer(campaign: Campaign, rules, now: datetime) -> int:
    """Rows due but outside their allowed hours now (the campaign was paused, or sending ran
    late) wait for their next window. Nothing to do, and no scan, while it is inside the
    hours everywhere."""
    zones = _zones_out_of_hours(campaign.company, rules, now)
    if not zones:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"""
            UPDATE campaigns_campaignrecipient r
            SET due_at = {_NEXT_ALLOWED.format(now="%(now)s::timestamptz", tz="r.time_zone")}
            WHERE r.campaign_id = %(campaign)s AND r.state = 'pending' AND r.due_at <= %(now)s
              AND r.time_zone = ANY(%(zones)s)
        """, {"campaign": campaign.pk, "now": now, "start": rules.send_window_start,
              "end": rules.send_window_end, "zones": zones})
        return cursor.rowcount


def _claim(campaign_id: int, now: datetime, limit: int) -> list[tuple[int, int, str, int]]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("""
            UPDATE campaigns_campaignrecipient r SET state = 'claimed', claimed_at = %(now)s,
                   attempts = r.attempts + 1
            WHERE r.id IN (SELECT id FROM campaigns_campaignrecipient
                           WHERE campaign_id = %(campaign)s AND state = 'pending' AND due_at <= %(now)s
                           ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
            RETURNING r.id, r.persona_id, r."to", r.attempts
        """, {"campaign": campaign_id, "now": now, "limit": limit})
        return cursor.fetchall()


def _recheck(campaign: Campaign, rules, claimed: list, now: datetime) -> dict[int, tuple[str, str]]:
    """Who, among the claimed, may no longer receive: consent withdrawn (a STOP while the
    campaign was sending), or over the cap because another campaign got there first."""
    sms = campaign.channel == Channel.SMS
    cap_count = rules.sms_cap_count if sms else rules.email_cap_count
    cap_days = rules.sms_cap_days if sms else rules.email_cap_days
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT p.id, p.{'sms_opt_in' if sms else 'email_opt_in'},
                   (SELECT count(*) FROM campaigns_campaignrecipient o
                    JOIN campaigns_campaign c ON c.id = o.campaign_id
                    WHERE o.persona_id = p.id AND o.sent_at >= %(since)s AND c.channel = %(channel)s
                      AND c.id <> %(campaign)s)
            FROM loyalty_persona p WHERE p.id = ANY(%(ids)s)
        """, {"ids": [row[1] for row in claimed], "since": now - timedelta(days=cap_days),
              "channel": campaign.channel, "campaign": campaign.pk})
        stop = {}
        for persona_id, consent, recent in cursor.fetchall():
            if not consent:
                stop[persona_id] = ("no_consent", "Consent was withdrawn before the message went out.")
            elif recent >= cap_count:
                stop[persona_id] = ("over_cap", "Over the frequency cap when the message was due.")
    return stop


def _merge_values(campaign: Campaign, persona_ids: list[int]) -> dict[int, dict[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT p.id, p.first_name, p.last_name, p.points_balance, p.tier, COALESCE(s.name, ''),
                   COALESCE(w.code, ''), COALESCE(w.name, '')
            FROM loyalty_persona p
            LEFT JOIN stores_retailstore s ON s.id = p.favourite_store_id
            LEFT JOIN LATERAL (SELECT wi.code, o.name FROM loyalty_walletitem wi
                               JOIN loyalty_offer o ON o.id = wi.offer_id
                               WHERE wi.persona_id = p.id AND wi.state = 'available'
                               ORDER BY wi.created_at DESC, wi.id DESC LIMIT 1) w ON TRUE
            WHERE p.id = ANY(%(ids)s) AND p.company_id = %(company)s
        """, {"ids": persona_ids, "company": campaign.company_id})
        return {row[0]: {"first_name": row[1], "last_name": row[2], "points": f"{row[3]:,}", "tier": row[4],
                         "store": row[5], "reward_code": row[6], "reward_name": row[7]}
                for row in cursor.fetchall()}


class Renderer:
    """The campaign's message, compiled once; `render` makes one recipient's."""

    def __init__(self, campaign: Campaign, rules):
        self.campaign = campaign
        self._links: dict[str, object] = {}
        company = campaign.company
        if campaign.channel == Channel.SMS:
            text = compose.sms_text(campaign.sms_body, rules.opt_out_line)
            # Each link becomes a marker no one types; the recipient's tracked link replaces it.
            links = {f"\x00{i}\x00": self._link(url) for i, url in enumerate(compose.links_find(text))}
            marked = compose.links_replace(text, {link.url: marker for marker, link in links.items()})
            self.markers = {marker: hooks.tracked_link_maker(link) for marker, link in links.items()}
            self.template = compose.compile_template(marked, field="sms_body")
        else:
            # Every link is made here, before the send threads (which never touch the database).
            for url in compose.links_find(f"{campaign.email_body}\n{campaign.email_button_url}"):
                self._link(url)
            self.branding = {"company_name": rules.email_from_name or company.name,
                             "accent_color": company.accent_color, "logo_url": _logo_url(company),
                             "postal_address": rules.postal_address}

    def _link(self, url: str):
        link = self._links.get(url)
        if link is None:
            link = self._links[url] = hooks.link_for(campaign=self.campaign, url=url)
        return link

    def render(self, recipient_id: int | None, persona_id: int | None, values: dict) -> dict:
        campaign = self.campaign
        if campaign.channel == Channel.SMS:
            body = self.template.render(values)
            for marker, tracked in self.markers.items():
                body = body.replace(marker, tracked(recipient_id))
            return {"body": body}
        unsubscribe = (hooks.unsubscribe_url(company=campaign.company, persona_id=persona_id,
                                             recipient_id=recipient_id)
                       if persona_id else hooks.public_url("/u/preview/"))

        def link(url):
            found = self._links.get(url)
            return hooks.tracked_link_url(link=found, recipient_id=recipient_id) if found else url

        email = compose.email_render(
            template=campaign.email_template, subject=campaign.email_subject,
            preheader=campaign.email_preheader,
            body=campaign.email_body, button_text=campaign.email_button_text,
            button_url=campaign.email_button_url, values=values, unsubscribe_url=unsubscribe, link=link,
            **self.branding)
        return {"subject": email.subject, "body": email.text, "html": email.html,
                "headers": compose.email_headers(unsubscribe_url=unsubscribe,
                                                 unsubscribe_post_url=unsubscribe)}


def _logo_url(company) -> str:
    """The logo on the company's loyalty page, which serves it to anyone while the page is
    on; no logo in the email otherwise."""
    from members.selectors import open_page_company

    if not company.logo_version or open_page_company(company.slug) is None:
        return ""
    path = reverse("members:logo", args=[company.slug])
    return f"{settings.PUBLIC_BASE_URL}{path}?v={company.logo_version}"


def _sender(campaign: Campaign, rules):
    if campaign.channel == Channel.SMS:
        return SmsSender(campaign.company)
    name = rules.email_from_name or campaign.company.name
    address = settings.DEFAULT_FROM_EMAIL
    sender = f'"{name}" <{address}>' if "<" not in address else address
    return EmailSender(campaign.company, from_email=sender)


def _outcomes_write(results: list[tuple], now: datetime) -> None:
    """One UPDATE for a chunk's outcomes: (id, state, provider_id, error_code, error, due_at)."""
    if not results:
        return
    with connection.cursor() as cursor:
        # A status callback may have moved a sent message on already (it names its
        # recipient): the row keeps that state and gets its sent time.
        cursor.execute("""
            UPDATE campaigns_campaignrecipient r
            SET state = CASE WHEN r.state = 'claimed' THEN v.state ELSE r.state END,
                provider_id = CASE WHEN r.provider_id = '' THEN v.provider_id ELSE r.provider_id END,
                error_code = CASE WHEN r.state = 'claimed' THEN v.error_code ELSE r.error_code END,
                error = CASE WHEN r.state = 'claimed' THEN v.error ELSE r.error END,
                due_at = COALESCE(v.due_at, r.due_at),
                sent_at = CASE WHEN v.state = 'sent' THEN %(now)s ELSE r.sent_at END
            FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(pids)s::text[], %(codes)s::text[],
                        %(errors)s::text[], %(dues)s::timestamptz[])
                 AS v(id, state, provider_id, error_code, error, due_at)
            WHERE r.id = v.id AND (r.state = 'claimed'
                                   OR (v.state = 'sent' AND r.sent_at IS NULL
                                       AND r.state IN ('sent', 'delivered', 'undelivered', 'failed')))
        """, {"ids": [r[0] for r in results], "states": [r[1] for r in results],
              "pids": [r[2] for r in results], "codes": [r[3] for r in results],
              "errors": [r[4] for r in results], "dues": [r[5] for r in results], "now": now})


def _outcome(row, now: datetime, *, provider_id: str = "", error: Exception | None = None) -> tuple:
    """What became of one message, as _outcomes_write takes it."""
    recipient_id, _persona_id, _to, attempts = row
    if error is None:
        return (recipient_id, S.SENT, provider_id or "", "", "", None)
    if isinstance(error, NotSent):
        if error.retryable and attempts < MAX_ATTEMPTS:
            retry_at = now + timedelta(seconds=RETRY_BASE_SECONDS * 2 ** (attempts - 1))
            return (recipient_id, S.PENDING, "", error.code, error.detail, retry_at)
        return (recipient_id, S.FAILED, "", error.code, error.detail, None)
    log.error("campaign message to recipient %s failed", recipient_id, exc_info=error)
    return (recipient_id, S.FAILED, "", "error", str(error)[:300], None)


ERASED = ("erased", "The customer's data was erased.")


def _send_one(sender, renderer: Renderer, row, values: dict | None, now: datetime) -> tuple:
    recipient_id, persona_id, to, _attempts = row
    if values is None:  # the persona was erased since the campaign was queued
        return (recipient_id, S.SKIPPED, "", *ERASED, None)
    try:
        message = renderer.render(recipient_id, persona_id, values)
        provider_id = sender.send(to=to, recipient_id=recipient_id, **message)
    except Exception as exc:  # noqa: BLE001 - one bad message does not stop the campaign
        return _outcome(row, now, error=exc)
    return _outcome(row, now, provider_id=provider_id)


async def _send_many_async(sender, renderer: Renderer, jobs: list, now: datetime, in_flight: int) -> list:
    """The batch's messages with up to `in_flight` at once, on the sender's asyncio client."""
    limit = asyncio.Semaphore(in_flight)

    async def one(row, values):
        recipient_id, persona_id, to, _attempts = row
        if values is None:
            return (recipient_id, S.SKIPPED, "", *ERASED, None)
        async with limit:
            try:
                message = renderer.render(recipient_id, persona_id, values)
                provider_id = await sender.send_async(to=to, recipient_id=recipient_id, **message)
            except Exception as exc:  # noqa: BLE001 - one bad message does not stop the campaign
                return _outcome(row, now, error=exc)
        return _outcome(row, now, provider_id=provider_id)

    return await asyncio.gather(*(one(row, values) for row, values in jobs))


class _LoopThread:
    """An asyncio event loop on a thread of its own; `run(coroutine)` waits for its result."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="campaign-send", daemon=True)
        self.thread.start()

    def submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine):
        return self.submit(coroutine).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def campaign_send_batch(*, campaign_id: int, budget_seconds: float = 20.0, batch_size: int = BATCH_SIZE,
                        threads: int = SEND_THREADS) -> tuple[str, float | None]:
    """Send the campaign's due messages for up to `budget_seconds`; what is left and when
    to come back: ("more", None), ("wait", seconds), ("done", None) or ("stopped", None).
    `threads`: messages in flight at once (Twilio's asyncio client; email, a thread pool)."""
    started = time.monotonic()
    campaign = Campaign.objects.select_related("company").get(pk=campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        return "stopped", None
    rules = messaging_settings(company=campaign.company)
    now = timezone.now()
    _interrupted_close(campaign_id, now)
    _out_of_hours_defer(campaign, rules, now)
    renderer, sender = Renderer(campaign, rules), _sender(campaign, rules)
    use_async = getattr(sender, "sends_async", False)
    # The asyncio client runs on a loop of its own thread: the caller's thread may have a
    # loop running already (an async worker, a test's browser driver).
    loop = _LoopThread() if use_async else None
    pool = None if use_async else ThreadPoolExecutor(max_workers=threads)
    in_flight = None
    try:
        # Twilio's batches are sent while the next one is claimed and prepared (the database
        # work overlaps the sending); a batch's outcomes are written when it is done.
        in_flight = None  # (future of the outcomes, the batch's skipped rows)
        while True:  # at least one batch, however short the budget
            if not Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).exists():
                return "stopped", None
            now = timezone.now()
            claimed = _claim(campaign_id, now, batch_size)
            if claimed:
                stop = _recheck(campaign, rules, claimed, now)
                values = _merge_values(campaign, [row[1] for row in claimed])
                skipped = [(rid, S.SKIPPED, "", stop[pid][0], stop[pid][1], None)
                           for rid, pid, _to, _n in claimed if pid in stop]
                jobs = [(row, values.get(row[1])) for row in claimed if row[1] not in stop]
                if use_async:
                    sending = loop.submit(_send_many_async(sender, renderer, jobs, now, threads))
                else:
                    results = list(pool.map(lambda job, at=now: _send_one(sender, renderer, *job, at), jobs))
                    _outcomes_write(skipped + results, timezone.now())
            if in_flight is not None:
                _outcomes_write(in_flight[1] + in_flight[0].result(), timezone.now())
                in_flight = None
            if claimed and use_async:
                in_flight = (sending, skipped)
            if not claimed:
                return _what_next(campaign_id, now)
            if time.monotonic() - started >= budget_seconds:
                if in_flight is not None:
                    _outcomes_write(in_flight[1] + in_flight[0].result(), timezone.now())
                    in_flight = None
                return "more", None
    finally:
        if loop is not None:
            if in_flight is not None:  # an error in the loop above: the batch sent still counts
                with contextlib.suppress(Exception):
                    _outcomes_write(in_flight[1] + in_flight[0].result(), timezone.now())
            loop.run(sender.aclose())
            loop.close()
        if pool is not None:
            pool.shutdown()


def _what_next(campaign_id: int, now: datetime) -> tuple[str, float | None]:
    rows = CampaignRecipient.objects.filter(campaign_id=campaign_id)
    next_due = rows.filter(state=S.PENDING).order_by("due_at").values_list("due_at", flat=True).first()
    if next_due is not None:
        return "wait", max(1.0, (next_due - now).total_seconds())
    if rows.filter(state=S.CLAIMED).exists():  # another worker's batch, or one that died
        return "wait", CLAIM_LEASE.total_seconds()
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.SENT, finished_at=now)
    if updated:
        log.info("campaign %s sent", campaign_id)
    return "done", None


def campaigns_tick(*, now: datetime | None = None) -> dict[str, int]:
    """Every minute: queue scheduled campaigns whose time has come, and make sure every
    sending campaign has a worker (after a restart, or messages waiting for their hours)."""
    from .tasks import campaign_queue_task, campaign_send_batch_task

    now = now or timezone.now()
    due = list(Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now)
               .values_list("pk", flat=True))
    for campaign_id in due:
        _enqueue(campaign_queue_task, campaign_id)
    sending = list(Campaign.objects.filter(status=Campaign.Status.SENDING).values_list("pk", flat=True))
    for campaign_id in sending:
        pending = CampaignRecipient.objects.filter(campaign_id=campaign_id, state__in=[S.PENDING, S.CLAIMED])
        if not pending.exists() or pending.filter(state=S.PENDING, due_at__lte=now).exists() \
                or pending.filter(state=S.CLAIMED, claimed_at__lt=now - CLAIM_LEASE).exists():
            _enqueue(campaign_send_batch_task, campaign_id)
    return {"queued": len(due), "sending": len(sending)}


def campaign_test_send(*, campaign: Campaign, audit: AuditContext | None, to: str, persona=None) -> str:
    """"Send a test to me": the message as `persona` (or a sample customer) would get it,
    to `to`, now, whatever the hours. The provider's id; raises NotSent as CampaignRefused."""
    rules = messaging_settings(company=campaign.company)
    _check_content(campaign)
    values = (_merge_values(campaign, [persona.pk]).get(persona.pk) if persona is not None else None) \
        or dict(compose.SAMPLE_VALUES)
    message = Renderer(campaign, rules).render(None, persona.pk if persona else None, values)
    if "subject" in message:
        message["subject"] = f"[Test] {message['subject']}"
    try:
        provider_id = _sender(campaign, rules).send(to=to, **message)
    except NotSent as exc:
        audit_record(audit=audit, company=campaign.company_id, kind="campaign.test_sent", obj=campaign,
                     extra={"to": to, "state": "failed", "error": f"{exc.code}: {exc.detail}"})
        raise CampaignRefused(f"The test was not sent: {exc.detail}", code="test_not_sent") from exc
    audit_record(audit=audit, company=campaign.company_id, kind="campaign.test_sent", obj=campaign,
                 extra={"to": to, "state": "sent"})
    return provider_id
