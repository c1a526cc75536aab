from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from audiences.models import Audience

from .models import Campaign, MessagingSettings


class AudienceSelect(forms.Select):
    """Each audience's size on its option, for the live cost estimate."""

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-size"] = instance.size
        return option


class CampaignForm(forms.ModelForm):
    email_button_url = forms.URLField(label="Button link", max_length=500, required=False,
                                      assume_scheme="https")
    scheduled_at = forms.DateTimeField(
        label="Send at", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Blank: when you press Send. Each message still waits for the recipient's allowed hours.")

    class Meta:
        model = Campaign
        fields = ["name", "channel", "audience", "sms_body", "email_subject", "email_preheader",
                  "email_template", "email_body", "email_button_text", "email_button_url", "holdout_percent",
                  "scheduled_at", "report_days"]
        widgets = {
            "channel": forms.RadioSelect,
            "audience": AudienceSelect(attrs={"data-audience-select": ""}),
            "sms_body": forms.Textarea(attrs={"rows": 5, "data-sms-body": "", "maxlength": 1600}),
            "email_body": forms.Textarea(attrs={"rows": 10}),
            "holdout_percent": forms.NumberInput(attrs={"min": 0, "max": 50}),
            "report_days": forms.NumberInput(attrs={"min": 1, "max": 90}),
        }
        help_texts = {
            "sms_body": "Merge fields: {first_name}, {last_name}, {points}, {tier}, {store}, {reward_code}, "
                        "{reward_name}. Links are replaced by short tracked links.",
            "email_body": "Plain text; a blank line starts a paragraph. Same merge fields as SMS.",
            "holdout_percent": "Kept out at random, to measure what the campaign changed. 0 to 50.",
            "report_days": "The report compares sales over this many days after sending.",
        }

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["audience"].queryset = Audience.objects.filter(company=company).order_by("name")
        self.fields["audience"].required = True
        self.fields["audience"].empty_label = "Pick an audience"
        # The model's check constraints, as field errors: a field's min/max set after its
        # construction would only change the widget, not what it accepts.
        self._range("holdout_percent", 0, 50)
        self._range("report_days", 1, 90)

    def _range(self, name: str, low: int, high: int) -> None:
        field = self.fields[name]
        field.min_value, field.max_value = low, high
        field.validators += [MinValueValidator(low), MaxValueValidator(high)]
        field.widget.attrs.update(min=low, max=high)

    def clean_scheduled_at(self):
        value = self.cleaned_data.get("scheduled_at")
        if value and value < timezone.now() - timezone.timedelta(minutes=1):
            raise forms.ValidationError("That time has passed: pick a later one, or leave it blank.")
        return value

    @property
    def sms_fields(self):
        return [self["sms_body"]]

    @property
    def email_fields(self):
        return [self[name] for name in ("email_subject", "email_preheader", "email_template", "email_body",
                                        "email_button_text", "email_button_url")]


class TestSendForm(forms.Form):
    to = forms.CharField(label="Send a test to", max_length=254,
                         help_text="Your mobile number (+1 303 555 0142) or email address.")


class MessagingSettingsForm(forms.ModelForm):
    class Meta:
        model = MessagingSettings
        fields = ["sms_cap_count", "sms_cap_days", "email_cap_count", "email_cap_days", "send_window_start",
                  "send_window_end", "opt_out_line", "sms_segment_price", "email_from_name", "postal_address"]
        widgets = {"send_window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
                   "send_window_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M")}

    def clean(self):
        data = super().clean()
        start, end = data.get("send_window_start"), data.get("send_window_end")
        if start and end and start >= end:
            self.add_error("send_window_end", "Pick a time after the start.")
        line = data.get("opt_out_line") or ""
        if line and "stop" not in line.lower():
            self.add_error("opt_out_line",
                           "Say how to opt out with the word STOP, e.g. “Reply STOP to opt out”.")
        for field in ("sms_cap_count", "email_cap_count"):
            if data.get(field) is not None and not 1 <= data[field] <= 50:
                self.add_error(field, "Between 1 and 50.")
        for field in ("sms_cap_days", "email_cap_days"):
            if data.get(field) is not None and not 1 <= data[field] <= 90:
                self.add_error(field, "Between 1 and 90 days.")
        return data
