"""Sign-in by a link in a text message, for a customer who checked in on the waiting-room
tablet: the kiosk offers "Text me a link to my rewards" (waitingroom/kiosk_offers.py), the
link carries the phone and its one-time code (signed), and opening it on their phone signs
them in (or on to joining) with the same checks as a typed code."""

from django.core import signing
from django.http import Http404
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from loyalty.phone import phone_display
from stores.errors import DomainError
from stores.http import client_address

from . import services
from .selectors import open_page_company
from .views import _page, page_render, phone_proven_response

# What the kiosk signs for this app: (company id, phone, the kiosk's path), for 10 minutes.
KIOSK_SALT, KIOSK_SECONDS = "members.kiosk-link", 10 * 60
LINK_SALT = "members.sign-in-link"


def kiosk_link_offer(request, entry):
    """The kiosk's offer once a customer checked in, when the company's page is open."""
    company = entry.store.company
    if not entry.persona.phone or open_page_company(company.slug) is None:
        return None
    try:
        action = reverse("members:kiosk_link", args=[company.slug])
    except NoReverseMatch:
        return None
    token = signing.dumps([company.pk, entry.persona.phone, request.path], salt=KIOSK_SALT)
    return {"action": action, "token": token, "label": "Text me a link to my rewards"}


@require_POST
def kiosk_link(request, slug):
    """From the tablet: text the checked-in number a sign-in link. The tablet learns nothing
    of whose number it is."""
    company = _page(slug)
    try:
        company_id, phone, back = signing.loads(request.POST.get("token", ""), salt=KIOSK_SALT,
                                                max_age=KIOSK_SECONDS)
    except signing.BadSignature:
        raise Http404("This check-in has expired.") from None
    if company_id != company.pk or not str(back).startswith("/queue/check-in/"):
        raise Http404("This check-in has expired.")

    def link(code: str) -> str:
        token = signing.dumps([company.pk, phone, code], salt=LINK_SALT)
        return request.build_absolute_uri(reverse("members:sign_in_link", args=[slug, token]))

    try:
        services.sign_in_code_send(company=company, phone=phone, address=client_address(request), link=link)
    except DomainError as exc:  # a send limit reached, or the SMS provider away: as on the sign-in page
        status = 429 if exc.code.startswith("too_many") else 503
        return page_render(request, company, "kiosk_link.html", {"error": exc.message, "back": back},
                           status=status)
    return page_render(request, company, "kiosk_link.html", {"error": "", "back": back})


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in_link(request, slug, token):
    """The link opened on the customer's phone: a button (a link previewer's GET must not
    use the code up), then signed in as after a typed code."""
    company = _page(slug)
    try:
        company_id, phone, code = signing.loads(token, salt=LINK_SALT, max_age=services.CODE_MINUTES * 60)
    except signing.BadSignature:
        company_id = phone = code = None
    if company_id != company.pk:
        return page_render(request, company, "sign_in_link.html", {"expired": True}, status=400)
    context = {"phone": phone_display(phone)}
    if request.method == "POST":
        try:
            checked = services.sign_in_code_check(company=company, phone=phone, code=code)
        except DomainError as exc:
            context["error"] = exc.message
            return page_render(request, company, "sign_in_link.html", context, status=400)
        return phone_proven_response(request, company, phone, checked.persona)
    return page_render(request, company, "sign_in_link.html", context)

