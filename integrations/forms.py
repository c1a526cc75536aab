"""The forms of the connection pages. They only check input; the services do the rest."""

from django import forms

from . import fields as F
from .connectors import report_connectors
from .models import Connection
from .providers import provider_class


class ConnectionForm(forms.Form):
    """Name, the provider's settings and secrets, and how its reports are imported.

    Secrets are password inputs that are never filled back in: on a saved connection a
    blank one keeps what is stored, and the help text says how the stored one ends."""

    name = forms.CharField(max_length=120, widget=forms.TextInput(
        attrs={"placeholder": "e.g. Nightly reports from Cova"}))

    def __init__(self, *args, company, provider: str, connection: Connection | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.provider = provider
        self.connection = connection
        cls = provider_class(provider)
        self.setting_names = [name for name, _, _ in cls.setting_fields]
        self.credential_names = [name for name, _, _ in cls.credential_fields]
        saved = connection.settings if connection else {}
        for name, label, help_text in cls.setting_fields_for(company_slug=company.slug):
            self.fields[name] = forms.CharField(label=label, help_text=help_text, required=False,
                                                initial=saved.get(name, ""))
        hints = connection.credentials_hint if connection else {}
        for name, label, help_text in cls.credential_fields:
            hint = hints.get(name)
            if hint:
                saved_as = f"Saved, ending {hint}." if hint.strip("…") else "Saved."
                help_text = f"{saved_as} Leave blank to keep it."
            self.fields[name] = forms.CharField(
                label=label, help_text=help_text, required=connection is None,
                strip=True, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
        self.fields["default_store"] = forms.ModelChoiceField(
            queryset=company.stores.order_by("name"), required=False, label="Default store",
            empty_label="— none: every row must name its store —",
            help_text="The store of rows that do not say which store they are from.",
            initial=connection.default_store_id if connection else None)
        self.fields["enroll_new_customers"] = forms.BooleanField(
            required=False, label="Enroll new customers in the loyalty program",
            help_text="Customers first seen in a report become loyalty members and earn points.",
            initial=connection.enroll_new_customers if connection else True)
        self.fields["sync_time"] = forms.TimeField(
            label="Nightly sync time", input_formats=["%H:%M", "%H:%M:%S"],
            widget=forms.TimeInput(format="%H:%M", attrs={"type": "time"}),
            help_text=f"In the company's time zone, {company.timezone}.",
            initial=connection.sync_time if connection else "02:00")
        if connection:
            self.fields["name"].initial = connection.name

    @property
    def provider_label(self) -> str:
        return provider_class(self.provider).label

    @property
    def required_headers(self) -> tuple[str, ...]:
        return provider_class(self.provider).required_headers

    def setting_fields(self):
        return [self[name] for name in self.setting_names]

    def credential_fields(self):
        return [self[name] for name in self.credential_names]

    def import_fields(self):
        return [self["default_store"], self["sync_time"]]

    def settings_data(self) -> dict:
        return {name: self.cleaned_data.get(name, "") for name in self.setting_names}

    def credentials_data(self) -> dict:
        return {name: self.cleaned_data.get(name, "") for name in self.credential_names}


class ProviderChoiceForm(forms.Form):
    provider = forms.ChoiceField(choices=(), label="Where the reports are")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(cls.key, cls.label) for cls in report_connectors()]


IGNORE = ("", "— ignore this column —")


def field_choices() -> list[tuple[str, str]]:
    return [IGNORE] + [(f.name, f.label) for f in F.FIELDS]


class StoreMappingForm(forms.Form):
    external_location_id = forms.CharField(
        max_length=200, label="Location in the reports",
        widget=forms.TextInput(attrs={"placeholder": "e.g. LOC-0042 or Downtown"}))
    store = forms.ModelChoiceField(queryset=None, required=False, label="Store",
                                   empty_label="— remove the mapping —")

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = company.stores.order_by("name")


class ConnectionDeleteForm(forms.Form):
    keep_data = forms.ChoiceField(
        label="Customers and sales it brought in", widget=forms.RadioSelect,
        choices=[("keep", "Keep them: customers, sales and points stay"),
                 ("remove", "Remove them: its sales are deleted and the points they earned are taken back")])
