"""The customer's rewards (offers to buy with points) and wallet (what they hold, each with
a code and its QR code to show at the counter)."""

from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from stores.qr import qr_svg

from .services_wallet import (
    RewardNotBought,
    purchase_token_new,
    reward_buy,
    reward_on_sale,
    reward_refused,
    rewards_on_sale,
    wallet_item_of,
    wallet_of,
)
from .sessions import customer_required
from .views import page_render


@require_GET
@customer_required
def rewards(request, slug):
    persona = request.persona
    return page_render(request, request.company, "rewards.html", {
        "persona": persona, "rewards": rewards_on_sale(company=request.company, persona=persona)},
        signed_in=True)


@never_cache
@require_http_methods(["GET", "POST"])
@customer_required
def reward_confirm(request, slug, offer_id):
    """"Spend 150 points on $10 off?": the confirmation, and the purchase it posts. Its form
    carries a token of its own, so sending it twice (a double tap, a reload) buys once."""
    company, persona = request.company, request.persona
    error = ""
    token = purchase_token_new()
    if request.method == "POST":
        token = request.POST.get("purchase_token", "")
        try:
            item = reward_buy(company=company, persona=persona, offer_id=offer_id, purchase_token=token)
        except RewardNotBought as exc:
            error = exc.message
        else:
            return redirect(f"{reverse('members:wallet', args=[slug])}?added={item.code}")
        persona.refresh_from_db(fields=["points_balance"])
        reward = reward_refused(company=company, persona=persona, offer_id=offer_id)
    else:
        reward = reward_on_sale(company=company, persona=persona, offer_id=offer_id)
    return page_render(request, company, "rewards.html", {
        "persona": persona, "confirm": reward, "purchase_token": token, "error": error},
        status=409 if error else 200, signed_in=True)


@require_GET
@customer_required
def wallet(request, slug):
    held = wallet_of(company=request.company, persona=request.persona)
    added = request.GET.get("added", "")
    return page_render(request, request.company, "wallet.html", {
        "persona": request.persona, "wallet": held,
        "added": next((i for i in held.available if i.code == added), None)}, signed_in=True)


@require_GET
@customer_required
def wallet_qr(request, slug, code):
    """The QR code of one of the customer's own wallet items, as SVG."""
    item = wallet_item_of(persona=request.persona, code=code)
    response = HttpResponse(qr_svg(item.code, title=f"QR code {item.code}", scale=8),
                            content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=3600"
    return response
