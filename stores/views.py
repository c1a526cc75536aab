import contextlib

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from .api_usage import API_ERRORS_KEPT, USAGE_DAYS, api_key_usage_flush
from .audit import audit_context
from .branding import branding_css_response, logo_response
from .errors import DomainError
from .extensions import store_mappings_form, store_mappings_save
from .models import (
    API_BURST_DEFAULT,
    API_BURST_MAX,
    API_RATE_DEFAULT,
    API_RATE_MAX,
    LOGO_MAX_BYTES,
    ApiKey,
    RetailStore,
    validate_accent_color,
)
from .selectors import api_key_get, api_key_usage, members_two_factor, store_get
from .services import (
    api_key_create,
    api_key_limits_update,
    api_key_revoke,
    company_branding_update,
    company_two_factor_require,
    store_create,
    store_update,
)
from .tenancy import SESSION_KEY, company_view


@require_POST
@login_required
def company_switch(request):
    """Act for another of the user's companies from now on."""
    try:
        company_id = int(request.POST.get("company", ""))
    except ValueError:
        raise Http404("No such company.") from None
    if not any(m.company_id == company_id for m in request.memberships):
        raise Http404("No such company.")
    request.session[SESSION_KEY] = company_id
    target = request.POST.get("next") or reverse("home")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("home")
    # Ids in the old company's URLs mean nothing in the new one: go to a list page.
    if any(ch.isdigit() for ch in target):
        target = reverse("home")
    return redirect(target)


class RetailStoreForm(forms.ModelForm):
    class Meta:
        model = RetailStore
        fields = ["name", "address", "city", "state", "postal_code", "timezone",
                  "opt_in_queue_enabled"]
        help_texts = {"opt_in_queue_enabled": "Customers can check in to this store's waiting "
                                              "room and budtenders see them in the queue."}

    # Sections later features add to the "Additional settings" part of the form.
    additional_fields = ["opt_in_queue_enabled"]

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.company = company
        self.fields["timezone"].widget = forms.TextInput(
            attrs={"placeholder": company.timezone, "list": "timezones"})

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = self.company.stores.filter(name__iexact=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("Another store already has this name.")
        return name

    def main_fields(self):
        return [f for f in self if f.name not in self.additional_fields]

    def extra_fields(self):
        return [f for f in self if f.name in self.additional_fields]


@company_view("settings.manage")
def store_list(request):
    stores = request.company.stores.order_by("name")
    return render(request, "stores/store_list.html", {"stores": stores})


def _store_form_page(request, form, store=None, mappings_form=None):
    """The form, with its errors when there are any. htmx only swaps 2xx responses, so an
    htmx re-render with errors is a 200 of the form alone; a plain POST gets a 400 page."""
    template = "stores/store_form.html"
    status = 400 if form.errors or (mappings_form is not None and mappings_form.errors) else 200
    if request.htmx:
        template += "#store-form"
        status = 200
    return render(request, template, {"form": form, "store": store, "mappings_form": mappings_form},
                  status=status)


@company_view("settings.manage")
def store_create_view(request):
    form = RetailStoreForm(request.POST or None, company=request.company)
    if request.method == "POST" and form.is_valid():
        try:
            store = store_create(company=request.company, audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.extra.get("field"), exc.message)
        else:
            messages.success(request, f"Store “{store.name}” added.")
            return _redirect(request, "store_list")
    return _store_form_page(request, form)


@company_view("settings.manage")
def store_edit(request, store_id):
    """The store's settings, and its Store mappings: which location of each Cova connection
    it is (a select of the locations Cova lists), and its report mappings, read-only."""
    store = store_get(company=request.company, store_id=store_id)
    form = RetailStoreForm(request.POST or None, instance=store, company=request.company)
    mappings_form = store_mappings_form(company=request.company, store=store, data=request.POST or None)
    if request.method == "POST" and form.is_valid() and mappings_form.is_valid():
        try:
            store_update(store=store_get(company=request.company, store_id=store_id),
                         audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.extra.get("field"), exc.message)
        else:
            if store_mappings_save(form=mappings_form, store=store, audit=audit_context(request)):
                messages.success(request, f"Store “{store.name}” saved.")
                return _redirect(request, "store_list")
    return _store_form_page(request, form, store, mappings_form)


def _redirect(request, name):
    """After a successful POST: a normal redirect, or an HX-Redirect for htmx."""
    url = reverse(name)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)



# -- Settings › API keys ---------------------------------------------------------------------

class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="The POS or register that uses it.",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. Cova – Denver"}))
    level = forms.TypedChoiceField(label="Integration level", coerce=int, choices=ApiKey.Level.choices,
                                   initial=ApiKey.Level.PUSH_PULL)


def _api_keys_page(request, *, form=None, created=None, raw_key="", status=200):
    with contextlib.suppress(DatabaseError):  # last used, up to now
        api_key_usage_flush()
    context = {
        "keys": request.company.api_keys.select_related("created_by").order_by("-created_at"),
        "form": form or ApiKeyForm(), "created": created, "raw_key": raw_key,
        "rate_default": API_RATE_DEFAULT, "burst_default": API_BURST_DEFAULT,
    }
    template = "stores/api_keys.html" + ("#api-keys" if request.htmx else "")
    response = render(request, template, context, status=200 if request.htmx else status)
    if raw_key:  # the key itself is in this page: no cache may keep it
        response["Cache-Control"] = "no-store"
    return response


@company_view("settings.manage")
def api_key_list(request):
    """Keys a POS authenticates with. A new key is shown once, in the response to the
    POST that created it; after that only its prefix."""
    if request.method != "POST":
        return _api_keys_page(request)
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            key, raw = api_key_create(company=request.company, name=form.cleaned_data["name"],
                                      level=form.cleaned_data["level"], created_by=request.user,
                                      audit=audit_context(request))
        except DomainError as exc:
            field = exc.extra.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            return _api_keys_page(request, created=key, raw_key=raw)
    return _api_keys_page(request, form=form, status=400)


class ApiKeyLimitsForm(forms.Form):
    rate_per_second = forms.IntegerField(
        label="Requests per second", min_value=1, max_value=API_RATE_MAX,
        help_text=f"The key's steady rate, 1 to {API_RATE_MAX:,}.")
    burst = forms.IntegerField(
        label="Burst", min_value=1, max_value=API_BURST_MAX,
        help_text=f"Requests it may make at once before the rate applies: at least the rate, "
                  f"at most {API_BURST_MAX:,}.")

    def clean(self):
        data = super().clean()
        rate, burst = data.get("rate_per_second"), data.get("burst")
        if rate is not None and burst is not None and burst < rate:
            self.add_error("burst", f"Enter at least the rate ({rate:,}).")
        return data


# Usage chart colours: the analytics brand green, and red for errors.
USAGE_COLORS = {"requests": "#1f6f4a", "errors": "#c0392b"}


def _usage_figure(usage) -> dict:
    days = [d.day.isoformat() for d in usage.days]
    bar = {"type": "bar", "x": days, "hovertemplate": "%{x|%b %-d}: %{y:,}<extra>%{fullData.name}</extra>"}
    return {
        "data": [{**bar, "name": "Requests", "y": [d.requests for d in usage.days],
                  "marker": {"color": USAGE_COLORS["requests"]}},
                 {**bar, "name": "Errors", "y": [d.errors for d in usage.days],
                  "marker": {"color": USAGE_COLORS["errors"]}}],
        "layout": {"barmode": "group", "height": 240, "margin": {"l": 48, "r": 8, "t": 8, "b": 32},
                   "legend": {"orientation": "h", "y": -0.2},
                   "xaxis": {"type": "date", "tickformat": "%b %-d"},
                   "yaxis": {"rangemode": "tozero", "tickformat": ",d"},
                   "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"},
    }


@company_view("settings.manage")
def api_key_detail(request, key_id):
    """One key: its rate limit (editable), requests and errors per day for 30 days, and its
    latest errors. What Redis counted since the last flush is flushed first."""
    key = api_key_get(company=request.company, key_id=key_id)
    form = ApiKeyLimitsForm(request.POST or None,
                            initial={"rate_per_second": key.rate_per_second, "burst": key.burst})
    if request.method == "POST" and form.is_valid():
        try:
            api_key_limits_update(api_key=key, audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            field = exc.extra.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            data = form.cleaned_data
            messages.success(request, f"Key “{key.name}” may now make {data['rate_per_second']:,} requests "
                                      f"a second, in bursts of {data['burst']:,}.")
            return redirect("api_key_detail", key_id=key.pk)
    with contextlib.suppress(DatabaseError):  # the page shows what the database has (Redis: never raises)
        api_key_usage_flush()
    usage = api_key_usage(api_key=key, days=USAGE_DAYS, errors=API_ERRORS_KEPT)
    return render(request, "stores/api_key_detail.html",
                  {"key": key, "form": form, "usage": usage, "figure": _usage_figure(usage),
                   "errors_kept": API_ERRORS_KEPT, "usage_days": USAGE_DAYS},
                  status=400 if form.errors else 200)


def _api_key_get(request, key_id) -> ApiKey:
    return api_key_get(company=request.company, key_id=key_id)


@require_POST
@company_view("settings.manage")
def api_key_revoke_view(request, key_id):
    key = _api_key_get(request, key_id)
    api_key_revoke(api_key=key, audit=audit_context(request))
    if request.htmx:
        return _api_keys_page(request)
    messages.success(request, f"Key “{key.name}” revoked: a POS using it is refused from now on.")
    return redirect("api_key_list")


# -- Settings › Security -----------------------------------------------------------------------

class SecurityForm(forms.Form):
    require_two_factor = forms.BooleanField(
        required=False, label="Require two-factor authentication",
        help_text="Everyone in the company signs in with a code from an authenticator app as well "
                  "as their password. Members who have not set it up are asked to at once.")


@company_view("settings.manage")
def security_settings(request):
    """Whether the company requires two-factor, and who has it on."""
    company = request.company
    # `request.POST or None` would take an unticked box (an empty form) for a page visit.
    form = SecurityForm(request.POST if request.method == "POST" else None,
                        initial={"require_two_factor": company.require_two_factor})
    if request.method == "POST" and form.is_valid():
        required = form.cleaned_data["require_two_factor"]
        try:
            company_two_factor_require(company=company, required=required, by=request.user,
                                       audit=audit_context(request))
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            if required:
                messages.success(request, "Two-factor authentication is required. Members without it "
                                          "set it up on their next page.")
            else:
                messages.success(request, "Two-factor authentication is no longer required.")
            return redirect("security_settings")
    members = members_two_factor(company=company)
    return render(request, "stores/security.html",
                  {"form": form, "members": members,
                   "members_without": sum(1 for m in members if not m.two_factor_on)},
                  status=400 if form.errors else 200)


# -- Settings › Branding -----------------------------------------------------------------------

class BrandingForm(forms.Form):
    logo = forms.FileField(
        required=False, label="Logo",
        help_text=f"A PNG, JPEG or WebP image, at most {LOGO_MAX_BYTES // 1024} KB. It is shown in the "
                  "top bar of every staff page and on the waiting-room tablet.")
    remove_logo = forms.BooleanField(required=False, label="Remove the logo")
    accent_color = forms.CharField(
        required=False, max_length=7, label="Accent colour",
        help_text="A hex colour like #1f6f4a, for the top bar and the tablet's buttons; text on it "
                  "is black or white, whichever reads better. Leave it empty for the default.",
        widget=forms.TextInput(attrs={"placeholder": "#1f6f4a", "autocomplete": "off",
                                      "spellcheck": "false"}))

    def clean_accent_color(self):
        value = self.cleaned_data["accent_color"].strip().lower()
        if value and not value.startswith("#"):
            value = "#" + value
        validate_accent_color(value)
        return value

    def clean_logo(self):
        upload = self.cleaned_data["logo"]
        if upload and upload.size > LOGO_MAX_BYTES:
            raise forms.ValidationError(f"The logo is {upload.size // 1024} KB: it can be at most "
                                        f"{LOGO_MAX_BYTES // 1024} KB.")
        return upload


@company_view("settings.manage")
def branding_settings(request):
    """The company's logo and accent colour."""
    company = request.company
    form = BrandingForm(request.POST or None, request.FILES or None,
                        initial={"accent_color": company.accent_color})
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["logo"]
        try:
            company_branding_update(company=company, accent_color=form.cleaned_data["accent_color"],
                                    logo=upload.read() if upload else None,
                                    remove_logo=form.cleaned_data["remove_logo"],
                                    audit=audit_context(request))
        except DomainError as exc:
            form.add_error("logo" if exc.code.startswith("logo") else None, exc.message)
        else:
            messages.success(request, "Branding saved.")
            return redirect("branding_settings")
    return render(request, "stores/branding.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def branding_logo(request):
    """The current company's logo: only its own members see it here."""
    if request.company is None:
        raise Http404("No company.")
    return logo_response(company=request.company, version=request.GET.get("v", ""))


@login_required
def branding_css(request):
    """The current company's accent colour, as CSS custom properties."""
    if request.company is None:
        raise Http404("No company.")
    return branding_css_response(company=request.company, version=request.GET.get("v", ""))
