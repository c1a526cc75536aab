"""Forms of the loyalty settings pages and the persona card. They only check input; the
services validate the rules and write."""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from .bounds import POINTS_MAX, POINTS_RANGE_MESSAGE, budtender_limit_message
from .models import LoyaltyProgram, Offer, Prompt, Tier
from .services.program import PROGRAM_FIELDS, PROGRAM_RANGES

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
LIST_HINT = "Comma-separated; the basket must hold one of them. Blank: any."


class LoyaltyProgramForm(forms.ModelForm):
    class Meta:
        model = LoyaltyProgram
        fields = list(PROGRAM_FIELDS)
        labels = {
            "points_per_unit": "Points per currency unit",
            "earn_on": "Points are earned on",
            "members_only": "Only enrolled members earn points",
            "discount_applies": "Offer discounts apply",
            "lock_ttl_minutes": "POS lock time-to-live (minutes)",
            "signup_bonus": "Signup bonus (points)",
            "expiry_months": "Points expire after (months without activity)",
            "budtenders_see_queue": "Budtenders can see the waiting-room queue",
            "budtender_adjustment_limit": "Largest adjustment a budtender may make",
        }
        help_texts = {
            "rounding": "How fractions of a point are rounded on each sale.",
            "refund_policy": "A refund sent by the POS either keeps its points, for staff to remove "
                             "by hand on the persona card, or takes them back automatically.",
            "signup_bonus": "Points given when a customer enrolls; 0 for none.",
            "members_only": "Untick to let every known customer earn, enrolled or not.",
            "budtender_adjustment_limit": "Points a budtender may add or take back at a time on the "
                                          "persona card; admins are not limited.",
        }

    # The checkboxes go in their own part of the form.
    checkbox_fields = ("members_only", "budtenders_see_queue")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (low, high, _) in PROGRAM_RANGES.items():
            field = self.fields[name]
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            field.widget.attrs.update({"min": low, "max": high})
        self.fields["points_per_unit"].widget.attrs["step"] = "0.01"
        self.fields["expiry_months"].widget.attrs["placeholder"] = "Never"

    def main_fields(self):
        return [f for f in self if f.name not in self.checkbox_fields]

    def flag_fields(self):
        return [f for f in self if f.name in self.checkbox_fields]


class TierForm(forms.Form):
    """One row of the tiers table; its inputs belong to the `<form id=...>` in the row."""

    name = forms.CharField(max_length=64, widget=forms.TextInput(attrs={"placeholder": "e.g. Gold"}))
    threshold_kind = forms.ChoiceField(label="Threshold on", choices=Tier.Threshold.choices)
    threshold = forms.DecimalField(min_value=0, max_digits=12, decimal_places=2,
                                   widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 500"}))
    earn_multiplier = forms.DecimalField(label="Earn multiplier", min_value=0, max_value=100, max_digits=5,
                                         decimal_places=2, initial=1,
                                         widget=forms.NumberInput(attrs={"step": "0.05"}))

    def __init__(self, *args, form_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.form_id = form_id
        for name, field in self.fields.items():
            field.widget.attrs.update({"form": form_id, "aria-label": field.label or name})


class CommaListField(forms.CharField):
    """Names separated by commas, shown back the same way."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        return [" ".join(v.split()) for v in value.split(",") if v.strip()]


class OfferForm(forms.Form):
    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"placeholder": "e.g. $5 off"}))
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                  help_text="Shown to the cashier and the customer.")
    kind = forms.ChoiceField(label="Discount", choices=Offer.Kind.choices)
    amount = forms.DecimalField(min_value=0, max_digits=12, decimal_places=2,
                                help_text="An amount of money, or a percent for percent offers.",
                                widget=forms.NumberInput(attrs={"step": "0.01"}))
    points_cost = forms.IntegerField(label="Points cost", min_value=0, max_value=POINTS_MAX, initial=0,
                                     help_text="Points a customer spends on it; 0: only staff grant it.")
    applies = forms.ChoiceField(label="Discount applies", required=False,
                                choices=[("", "As the program says")] + [
                                    ("before_tax", "Before tax"), ("after_tax", "After tax")])
    starts_at = forms.DateTimeField(label="Valid from", required=False, input_formats=[DATETIME_FORMAT],
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                               format=DATETIME_FORMAT))
    ends_at = forms.DateTimeField(label="Valid until", required=False, input_formats=[DATETIME_FORMAT],
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                             format=DATETIME_FORMAT))
    min_subtotal = forms.DecimalField(label="Minimum subtotal", min_value=0, max_digits=12, decimal_places=2,
                                      initial=0, widget=forms.NumberInput(attrs={"step": "0.01"}))
    categories = CommaListField(required=False, help_text=LIST_HINT,
                                widget=forms.TextInput(attrs={"placeholder": "e.g. Flower, Edibles"}))
    brands = CommaListField(required=False, help_text=LIST_HINT,
                            widget=forms.TextInput(attrs={"placeholder": "e.g. Wana, Stiiizy"}))
    stores = forms.ModelMultipleChoiceField(queryset=None, required=False,
                                            widget=forms.CheckboxSelectMultiple,
                                            help_text="None ticked: every store.")
    tiers = forms.ModelMultipleChoiceField(queryset=None, required=False,
                                           widget=forms.CheckboxSelectMultiple,
                                           help_text="None ticked: every customer.")
    limit_per_persona = forms.IntegerField(label="Limit per customer", required=False, min_value=1,
                                           help_text="Blank: no limit.")
    is_active = forms.BooleanField(label="Active", required=False, initial=True,
                                   help_text="Inactive offers are kept but not offered at the POS.")

    main = ("name", "description")
    pricing = ("kind", "amount", "points_cost", "applies")
    window = ("starts_at", "ends_at")
    basket = ("min_subtotal", "limit_per_persona", "categories", "brands")
    scope = ("stores", "tiers")

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stores"].queryset = company.stores.order_by("name")
        self.fields["tiers"].queryset = Tier.objects.filter(company=company).order_by("threshold_kind",
                                                                                       "threshold")

    @staticmethod
    def initial_for(offer: Offer) -> dict:
        return {name: getattr(offer, name) for name in (
            "name", "description", "kind", "amount", "points_cost", "applies", "starts_at", "ends_at",
            "min_subtotal", "categories", "brands", "limit_per_persona", "is_active",
        )} | {"stores": list(offer.stores.all()), "tiers": list(offer.tiers.all())}

    def main_fields(self):
        return [self[n] for n in self.main]

    def pricing_fields(self):
        return [self[n] for n in self.pricing]

    def window_fields(self):
        return [self[n] for n in self.window]

    def basket_fields(self):
        return [self[n] for n in self.basket]

    def scope_fields(self):
        return [self[n] for n in self.scope]


class PromptForm(forms.Form):
    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"placeholder": "e.g. TV warranty"}))
    condition = forms.ChoiceField(label="Fires when", choices=Prompt.Condition.choices)
    value = forms.CharField(required=False, max_length=200,
                            widget=forms.TextInput(attrs={"list": "prompt-values",
                                                          "placeholder": "e.g. Flower, 500 or Gold"}))
    message = forms.CharField(label="Message for the cashier", max_length=300,
                              widget=forms.Textarea(attrs={"rows": 2, "placeholder":
                                                           "e.g. Offer the 2-year warranty"}))
    suggested_sku = forms.CharField(label="Suggested SKU", required=False, max_length=100)
    is_active = forms.BooleanField(label="Active", required=False, initial=True)


class WalletGrantForm(forms.Form):
    offer = forms.ModelChoiceField(queryset=None, empty_label="— pick an offer —")

    def __init__(self, *args, offers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["offer"].queryset = offers


class PointsField(forms.IntegerField):
    """A whole number of points the ledger's columns can hold. Decimals, exponents and
    separators are refused, never rounded or read as another number."""

    WHOLE = re.compile(r"[+-]?\d+")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widget.attrs.update({"min": -POINTS_MAX, "max": POINTS_MAX, "step": 1})

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        # Past ten digits it is out of range anyway; int() of a huge string is not free.
        if not self.WHOLE.fullmatch(text) or len(text.lstrip("+-").lstrip("0")) > 10:
            raise ValidationError(POINTS_RANGE_MESSAGE, code="invalid")
        number = int(text)
        if abs(number) > POINTS_MAX:
            raise ValidationError(POINTS_RANGE_MESSAGE, code="out_of_range")
        return number


class PointsAdjustForm(forms.Form):
    """Points added or taken back on the persona card; `limit` is the most the signed-in
    staff member may move at a time (None: only the columns bound it)."""

    delta = PointsField(label="Points", help_text="Negative to remove points",
                        widget=forms.NumberInput(attrs={"placeholder": "e.g. -120"}))
    reason = forms.CharField(max_length=300, widget=forms.TextInput(
        attrs={"placeholder": "e.g. Return of receipt 10422"}))
    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, limit: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit
        if limit is not None:
            self.fields["delta"].widget.attrs.update({"min": -limit, "max": limit})

    def clean_delta(self):
        delta = self.cleaned_data["delta"]
        if self.limit is not None and abs(delta) > self.limit:
            raise ValidationError(budtender_limit_message(self.limit), code="over_limit")
        return delta
