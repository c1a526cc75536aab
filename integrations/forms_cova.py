"""The forms of the Cova pages. They only check input; `integrations.services.cova` does the rest."""

import re

from django import forms

from .models import CovaCredential
from .providers.cova import DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL

US_STATES = [
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
    ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("DC", "District of Columbia"),
    ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"),
    ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"),
    ("ME", "Maine"), ("MD", "Maryland"), ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"),
    ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"),
    ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"),
    ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"), ("OR", "Oregon"),
    ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"), ("SD", "South Dakota"),
    ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"),
    ("WA", "Washington"), ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
]
CA_PROVINCES = [
    ("AB", "Alberta"), ("BC", "British Columbia"), ("MB", "Manitoba"), ("NB", "New Brunswick"),
    ("NL", "Newfoundland and Labrador"), ("NS", "Nova Scotia"), ("NT", "Northwest Territories"),
    ("NU", "Nunavut"), ("ON", "Ontario"), ("PE", "Prince Edward Island"), ("QC", "Quebec"),
    ("SK", "Saskatchewan"), ("YT", "Yukon"),
]
MARKET_CHOICES = [(code, f"{code} · {name}") for code, name in US_STATES + CA_PROVINCES]
LOCATION_IDS_SPLIT = re.compile(r"[\s,;]+")


class CovaCredentialForm(forms.Form):
    """One set of API keys Cova released, and its optional settings.

    The secrets are password inputs that are never filled back in: on a saved credential a
    blank one keeps what is stored, and the help text says how the stored one ends."""

    grant_type = forms.ChoiceField(choices=[("password", "password")], initial="password",
                                   label="Grant type", help_text="As in Cova's e-mail: always “password”.")
    client_id = forms.CharField(max_length=200, label="Client id",
                                widget=forms.TextInput(attrs={"placeholder": "YOURCOMPANYNAME.AIQ",
                                                              "autocomplete": "off"}))
    client_secret = forms.CharField(max_length=500, label="Client secret", strip=True)
    username = forms.CharField(max_length=200, label="Username", widget=forms.TextInput(
        attrs={"placeholder": "AIQ.COVA.APIUser.YOURCOMPANYNAME", "autocomplete": "off"}))
    password = forms.CharField(max_length=500, label="Password", strip=True)
    cova_company_id = forms.CharField(max_length=40, label="Cova company id",
                                      widget=forms.TextInput(attrs={"inputmode": "numeric"}),
                                      help_text="The number Cova gives your company.")
    # Optional settings
    markets = forms.MultipleChoiceField(
        choices=MARKET_CHOICES, required=False, widget=forms.CheckboxSelectMultiple,
        label="Relevant markets of this credential",
        help_text="Sync customers only from these states or provinces. None ticked: every market.")
    is_frozen = forms.BooleanField(required=False, label="Freeze",
                                   help_text="Stop syncing data with this credential until unfrozen.")
    location_ids = forms.CharField(
        required=False, label="Restrict imports to Cova location ids",
        widget=forms.TextInput(attrs={"placeholder": "e.g. 1001, 1002"}),
        help_text="Sales are imported only from these locations. Empty: every location.")
    pricing_group_id = forms.CharField(
        max_length=100, required=False, label="Force a pricing group id",
        help_text="Set on every customer this platform creates in Cova.")
    skip_payment_methods = forms.BooleanField(
        required=False, label="Skip importing payment methods",
        help_text="Do not pull payment methods when the field is blank; syncs go faster.")
    sync_time = forms.TimeField(
        label="Nightly sync time", input_formats=["%H:%M", "%H:%M:%S"], initial="02:30",
        widget=forms.TimeInput(format="%H:%M", attrs={"type": "time"}))
    accounts_url = forms.URLField(required=False, label="Sign-in server", assume_scheme="https",
                                  widget=forms.TextInput(attrs={"inputmode": "url",
                                                                "placeholder": DEFAULT_ACCOUNTS_URL}),
                                  help_text="Leave empty for Cova's own; only for Cova's test environment.")
    api_url = forms.URLField(required=False, label="API server", assume_scheme="https",
                             widget=forms.TextInput(attrs={"inputmode": "url",
                                                           "placeholder": DEFAULT_API_URL}),
                             help_text="Leave empty for Cova's own; only for Cova's test environment.")

    secret_names = ("client_secret", "password")
    key_names = ("grant_type", "client_id", "client_secret", "username", "password", "cova_company_id")
    advanced_names = ("accounts_url", "api_url")

    def __init__(self, *args, company, credential: CovaCredential | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.credential = credential
        self.fields["sync_time"].help_text = f"In the company's time zone, {company.timezone}."
        hints = credential.secrets_hint if credential else {}
        for name in self.secret_names:
            field = self.fields[name]
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            field.required = credential is None
            hint = hints.get(name, "")
            if credential is not None:
                saved = f"Saved, ending {hint}." if hint.strip("…") else "Saved."
                field.help_text = f"{saved} Leave blank to keep it."
        if credential is not None:
            for name in ("client_id", "username", "cova_company_id", "markets", "is_frozen",
                         "pricing_group_id", "skip_payment_methods", "sync_time", "accounts_url", "api_url"):
                self.fields[name].initial = getattr(credential, name)
            self.fields["location_ids"].initial = ", ".join(credential.location_ids)

    def clean_cova_company_id(self):
        value = self.cleaned_data["cova_company_id"].strip()
        if not value.isdigit():
            raise forms.ValidationError("The Cova company id is a number, e.g. 123456.")
        return value

    def clean_location_ids(self) -> list[str]:
        ids = [v for v in LOCATION_IDS_SPLIT.split(self.cleaned_data["location_ids"]) if v]
        wrong = [v for v in ids if not v.isdigit()]
        if wrong:
            raise forms.ValidationError(f"Cova location ids are numbers; “{wrong[0]}” is not.")
        return list(dict.fromkeys(ids))

    def key_fields(self):
        return [self[name] for name in self.key_names]

    def advanced_fields(self):
        return [self[name] for name in self.advanced_names]

    def service_kwargs(self) -> dict:
        """The keyword arguments of `cova_credential_save`, from the cleaned data."""
        data = self.cleaned_data
        return {
            "client_id": data["client_id"].strip(), "client_secret": data["client_secret"],
            "username": data["username"].strip(), "password": data["password"],
            "cova_company_id": data["cova_company_id"], "accounts_url": data["accounts_url"],
            "api_url": data["api_url"], "markets": tuple(data["markets"]), "is_frozen": data["is_frozen"],
            "location_ids": tuple(data["location_ids"]), "pricing_group_id": data["pricing_group_id"].strip(),
            "skip_payment_methods": data["skip_payment_methods"], "sync_time": data["sync_time"],
        }


class CovaConnectForm(CovaCredentialForm):
    """Connect: the connection's name, and its first credential."""

    name = forms.CharField(max_length=120, initial="Cova", label="Connection name",
                           help_text="Personas it brings in show it under “Sourced from”.")

    field_order = ["name"]


class StoreMappingsForm(forms.Form):
    """The "Store mappings" section of a retail store's edit form: one select per
    connection whose connector keeps its locations (Cova), named `<provider>-<connection
    id>`, listing them."""

    def __init__(self, *args, sections: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.sections = sections
        for section in sections:
            if section["error"]:
                continue  # the locations could not be fetched: nothing to choose from
            choices = [("", "— not mapped —")]
            section["options"] = []
            for location in section["locations"]:
                parts = (location.name, f"#{location.id}", location.state)
                label = " · ".join(part for part in parts if part)
                elsewhere = section["mapped_elsewhere"].get(location.id, "")
                section["options"].append({"id": location.id, "label": label, "elsewhere": elsewhere})
                choices.append((location.id, label))
            self.fields[section["field_name"]] = forms.ChoiceField(
                choices=choices, required=False, label=f"{section['connection'].name} location",
                initial=section["current"])
            section["field"] = self[section["field_name"]]

    def changes(self) -> list[tuple[dict, str]]:
        """(section, new location id) for each select whose value changed."""
        return [(s, self.cleaned_data[s["field_name"]]) for s in self.sections
                if not s["error"] and self.cleaned_data[s["field_name"]] != s["current"]]
