"""The forms of Settings › Loyalty page. They only check input; the service saves."""

import re

from django import forms

from loyalty.errors import InvalidPhone
from loyalty.phone import phone_normalize

from .models import LoyaltyPageSettings

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
MARKET = re.compile(r"^[A-Z]{2,3}$")
AGE_MIN, AGE_MAX = 13, 99
BLANK_MARKET_ROWS = 3
MAX_MARKET_ROWS = 80


class LoyaltyPageSettingsForm(forms.Form):
    """On/off, the minimum age (and per market, as rows of market code and age), and the
    SMS provider. The auth token is a password input never filled back in: blank keeps the
    stored one, and the help text says how it ends."""

    enabled = forms.BooleanField(required=False, label="Loyalty page on",
                                 help_text="Customers can open the page, sign in and join.")
    minimum_age = forms.IntegerField(min_value=AGE_MIN, max_value=AGE_MAX, label="Minimum age to join",
                                     help_text="Where the customer's market has no age of its own.")
    sms_provider = forms.ChoiceField(choices=LoyaltyPageSettings.SmsProvider.choices,
                                     widget=forms.RadioSelect, label="Text messages are sent with")
    twilio_account_sid = forms.CharField(
        required=False, max_length=64, label="Twilio account SID",
        widget=forms.TextInput(attrs={"placeholder": "AC…", "autocomplete": "off", "spellcheck": "false"}),
        help_text="On the Twilio console's front page: AC followed by 32 characters.")
    twilio_sender = forms.CharField(
        required=False, max_length=64, label="Sender",
        widget=forms.TextInput(attrs={"placeholder": "+13035550100 or MG…", "autocomplete": "off"}),
        help_text="A Twilio phone number of the account, or a Messaging Service SID (MG…).")
    twilio_auth_token = forms.CharField(
        required=False, max_length=128, strip=True, label="Twilio auth token",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; never shown again.")

    def __init__(self, *args, page: LoyaltyPageSettings, **kwargs):
        kwargs.setdefault("initial", {
            "enabled": page.enabled, "minimum_age": page.minimum_age, "sms_provider": page.sms_provider,
            "twilio_account_sid": page.twilio_account_sid, "twilio_sender": page.twilio_sender})
        super().__init__(*args, **kwargs)
        self.page = page
        if page.twilio_auth_token_encrypted:
            self.fields["twilio_auth_token"].help_text = (
                f"Saved, ending ••••{page.twilio_auth_token_last4}. Leave blank to keep it.")
        saved = sorted(page.minimum_ages.items())
        posted = [key for key in (self.data or {}) if re.fullmatch(r"market_\d+", key)]
        rows = min(MAX_MARKET_ROWS, max(len(saved) + BLANK_MARKET_ROWS, len(posted)))
        self.market_rows = []
        for index in range(rows):
            market, age = saved[index] if index < len(saved) else ("", None)
            self.fields[f"market_{index}"] = forms.CharField(
                required=False, max_length=3, label=f"Market {index + 1}", initial=market,
                widget=forms.TextInput(attrs={"placeholder": "e.g. CO", "size": 4, "autocomplete": "off"}))
            self.fields[f"age_{index}"] = forms.IntegerField(
                required=False, min_value=AGE_MIN, max_value=AGE_MAX, initial=age,
                label=f"Minimum age in market {index + 1}")
            self.market_rows.append((self[f"market_{index}"], self[f"age_{index}"]))

    def general_fields(self):
        return [self["minimum_age"]]

    def twilio_fields(self):
        return [self["twilio_account_sid"], self["twilio_sender"], self["twilio_auth_token"]]

    def clean_twilio_account_sid(self):
        value = self.cleaned_data["twilio_account_sid"].strip()
        if value and not ACCOUNT_SID.match(value):
            raise forms.ValidationError("An account SID is AC followed by 32 letters and digits (0-9, a-f).")
        return value

    def clean_twilio_sender(self):
        value = self.cleaned_data["twilio_sender"].strip()
        if not value or MESSAGING_SERVICE_SID.match(value):
            return value
        try:
            return phone_normalize(value, field="twilio_sender")
        except InvalidPhone:
            raise forms.ValidationError("The sender is a phone number (e.g. +13035550100) "
                                        "or a Messaging Service SID (MG…).") from None

    def clean(self):
        data = super().clean()
        ages = {}
        for index, (market_field, age_field) in enumerate(self.market_rows):
            market = (data.get(f"market_{index}") or "").strip().upper()
            age = data.get(f"age_{index}")
            if not market and age is None:
                continue
            if not MARKET.match(market):
                self.add_error(market_field.name, "A market is its state or province code, e.g. CO.")
            elif market in ages:
                self.add_error(market_field.name, f"{market} is listed twice.")
            if age is None:
                if f"age_{index}" not in self.errors:
                    self.add_error(age_field.name, "Give the minimum age in this market.")
                continue
            ages[market] = age
        data["minimum_ages"] = ages
        if data.get("sms_provider") == LoyaltyPageSettings.SmsProvider.TWILIO:
            for name, what in (("twilio_account_sid", "the account SID"), ("twilio_sender", "the sender")):
                if name in data and not data[name]:
                    self.add_error(name, f"Our Twilio account needs {what}.")
            if not data.get("twilio_auth_token") and not self.page.twilio_auth_token_encrypted:
                self.add_error("twilio_auth_token", "Our Twilio account needs its auth token.")
        return data

    def settings_data(self) -> dict:
        data = self.cleaned_data
        return {"enabled": data["enabled"], "minimum_age": data["minimum_age"],
                "minimum_ages": data["minimum_ages"], "sms_provider": data["sms_provider"],
                "twilio_account_sid": data["twilio_account_sid"], "twilio_sender": data["twilio_sender"],
                "twilio_auth_token": data["twilio_auth_token"] or None}


class TestMessageForm(forms.Form):
    to = forms.CharField(max_length=32, label="Send a test message to",
                         widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel",
                                                       "placeholder": "(303) 555-0142"}),
                         help_text="With the settings as saved.")

    def clean_to(self):
        try:
            return phone_normalize(self.cleaned_data["to"], field="to")
        except InvalidPhone as exc:
            raise forms.ValidationError(exc.message) from None
