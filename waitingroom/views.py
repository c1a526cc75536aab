import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from stores.audit import audit_context
from stores.branding import branding_css_response, logo_response
from stores.errors import DomainError
from stores.http import client_address
from stores.models import RetailStore
from stores.qr import qr_svg
from stores.selectors import store_get
from stores.services import store_checkin_token_regenerate
from stores.tenancy import company_view

from . import selectors, services
from .forms import CheckInForm
from .kiosk_offers import kiosk_offers
from .models import QueueState

# -- The budtender's queue ---------------------------------------------------------------------


@company_view("queue.view")
def queue_home(request):
    """The queues this user may open; straight to it when there is one."""
    access = selectors.queue_access(membership=request.membership)
    if len(access.stores) == 1:
        return redirect("queue_store", store_id=access.stores[0].pk)
    counts = selectors.queue_waiting_counts(stores=access.stores)
    for store in access.stores:
        store.waiting = counts.get(store.pk, 0)
    return render(request, "waitingroom/queue_home.html", {"access": access})


def _queue_store(request, store_id):
    access = selectors.queue_access(membership=request.membership)
    store = selectors.queue_store_get(access=access, store_id=store_id)
    # Times on the queue read in the store's own clock, which may not be the company's.
    timezone.activate(zoneinfo.ZoneInfo(store.effective_timezone))
    return store, access


def _waited(since) -> str:
    """How long since check-in, as a budtender says it: "just now", "7 min", "1 h 05"."""
    minutes = int((timezone.now() - since).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d}"


def _queue_rows(store) -> list[dict]:
    """Today's queue as the rows the page shows. Worked out here, once a row, rather than
    looked up field by field in the template: every open queue redraws every two seconds."""
    base = reverse("queue_store", args=[store.pk]) + "entries/"  # one reverse() a page
    rows = []
    for entry in selectors.queue_today(store=store):
        arrived = timezone.localtime(entry.checked_in_at)
        rows.append({
            "id": entry.pk, "url": f"{base}{entry.pk}/", "name": entry.persona.display_name,
            "member": entry.persona.is_member, "serving": entry.state == QueueState.SERVING,
            "served_by": entry.served_by.get_username() if entry.served_by else "",
            "arrived": f"{arrived:%-I:%M %p}", "waited": _waited(entry.checked_in_at),
        })
    return rows


COUNTER_MODE_KEY = "queue_counter_mode"


def _counter_mode(request) -> bool:
    """The tablet at the counter: large type, a tap on a row opens the profile, no side
    navigation. `?mode=counter` turns it on for this browser's session, `?mode=staff` off."""
    mode = request.GET.get("mode")
    if mode in ("counter", "staff"):
        request.session[COUNTER_MODE_KEY] = mode == "counter"
    return bool(request.session.get(COUNTER_MODE_KEY, False))


def _queue_context(request, store, access, *, note="", error=""):
    return {"store": store, "rows": _queue_rows(store), "stores": access.stores,
            "access_notice": access.notice, "note": note, "error": error,
            "counter": _counter_mode(request)}


@never_cache
@company_view("queue.view")
def queue_store(request, store_id):
    """Today's queue at one store. The list part of the page polls itself every few
    seconds, so arrivals show up without a reload. In counter mode (see _counter_mode) it
    fills the screen of the tablet at the counter."""
    store, access = _queue_store(request, store_id)
    template = "waitingroom/queue.html"
    if request.htmx and request.htmx.target == "queue-entries":
        template += "#entries"
    response = render(request, template, _queue_context(request, store, access))
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


_ACTIONS = {
    "serve": lambda entry, request: services.queue_serving_start(entry=entry, user=request.user),
    "done": lambda entry, request: services.queue_entry_finish(entry=entry),
    "remove": lambda entry, request: services.queue_entry_remove(entry=entry),
    "signup": lambda entry, request: services.queue_signup(entry=entry, audit=audit_context(request)),
}
_DONE_NOTES = {
    "serve": "Serving {name}.", "done": "{name} is done.", "remove": "{name} left the queue.",
    "signup": "{name} is now a loyalty member.",
}


@require_POST
@company_view("queue.view")
def queue_entry_action(request, store_id, entry_id, action):
    if action not in _ACTIONS:
        raise Http404("No such action.")
    store, access = _queue_store(request, store_id)
    entry = selectors.queue_entry_get(store=store, entry_id=entry_id)
    note = error = ""
    try:
        _ACTIONS[action](entry, request)
    except DomainError as exc:
        error = exc.message
    else:
        note = _DONE_NOTES[action].format(name=entry.persona.display_name)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, note)
        return redirect("queue_store", store_id=store.pk)
    return render(request, "waitingroom/queue.html#entries",
                  _queue_context(request, store, access, note=note, error=error))


@company_view("queue.view")
def queue_profile(request, store_id, entry_id):
    """The customer's profile, in the panel beside the queue (or as a page of its own)."""
    store, _ = _queue_store(request, store_id)
    entry = selectors.queue_entry_get(store=store, entry_id=entry_id)
    context = selectors.persona_profile(persona=entry.persona) | {"store": store, "entry": entry}
    if request.htmx:
        return render(request, "waitingroom/profile.html#panel", context)
    return render(request, "waitingroom/profile.html", context)


# -- Settings › Retail stores: the kiosk link ------------------------------------------------------

def checkin_link_context(request, store: RetailStore) -> dict:
    url = request.build_absolute_uri(reverse("queue_check_in", args=[store.checkin_token]))
    return {"store": store, "checkin_url": url, "checkin_qr": qr_svg(url, title="Check-in QR code")}


@require_POST
@company_view("settings.manage")
def checkin_link_regenerate(request, store_id):
    """A new kiosk link; the old one stops working at once."""
    store = store_get(company=request.company, store_id=store_id)
    store = store_checkin_token_regenerate(store=store, audit=audit_context(request))
    context = checkin_link_context(request, store) | {
        "note": "A new check-in link is live. Open it on the tablet; the old link no longer works."}
    return render(request, "waitingroom/checkin_link.html", context)


# -- The kiosk at the door (public) ---------------------------------------------------------------

def _too_many(request, store) -> bool:
    """A fixed window per tablet (address) and store, kept in Redis."""
    limit = settings.CHECKIN_RATE_LIMIT_PER_MINUTE
    key = f"checkin-rate:{store.checkin_token}:{client_address(request)}"
    cache.add(key, 0, timeout=60)
    try:
        return cache.incr(key) > limit
    except ValueError:  # the window closed between add and incr
        cache.set(key, 1, timeout=60)
        return False


@never_cache
def queue_check_in(request, token):
    store = selectors.checkin_store_get(token=token)
    form = CheckInForm(request.POST or None)
    context = {"store": store, "form": form}
    if request.method == "POST":
        if _too_many(request, store):
            context["error"] = ("Too many check-ins from this tablet just now. "
                                "Please wait a minute and try again.")
            return render(request, "waitingroom/kiosk.html", context, status=429)
        if form.is_valid():
            try:
                entry = services.queue_check_in(store=store, **form.cleaned_data)
            except DomainError as exc:
                field = exc.extra.get("field")
                message = exc.message
                if field == "phone":
                    message += " Enter your mobile number with its area code."
                form.add_error(field if field in form.fields else None, message)
            else:
                # Greet them by the name typed here, never the one on file: anyone can type
                # any number, and the tablet must not tell whose it is.
                context |= {"entry": entry, "position": selectors.queue_position(entry=entry),
                            "greeting": form.cleaned_data["first_name"], "form": CheckInForm(),
                            "offers": kiosk_offers(request, entry)}
                return render(request, "waitingroom/kiosk.html", context)
        return render(request, "waitingroom/kiosk.html", context, status=400)
    return render(request, "waitingroom/kiosk.html", context)


# The tablet's branding, by the store's check-in link (it has no signed-in company).

def kiosk_logo(request, token):
    store = selectors.checkin_store_get(token=token)
    return logo_response(company=store.company, version=request.GET.get("v", ""))


def kiosk_branding_css(request, token):
    store = selectors.checkin_store_get(token=token)
    return branding_css_response(company=store.company, version=request.GET.get("v", ""))
