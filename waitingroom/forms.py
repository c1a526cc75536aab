from django import forms


class CheckInForm(forms.Form):
    """What a customer types on the tablet at the door."""

    phone = forms.CharField(
        label="Mobile number", max_length=40,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel",
                                      "placeholder": "(303) 555-0142", "autofocus": True}))
    first_name = forms.CharField(label="First name", max_length=100, required=False,
                                 widget=forms.TextInput(attrs={"autocomplete": "given-name"}))
    last_name = forms.CharField(label="Last name", max_length=100, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    sms_opt_in = forms.BooleanField(
        label="Text me deals and updates", required=False,
        help_text="Message and data rates may apply. Reply STOP to opt out.")
    loyalty_opt_in = forms.BooleanField(
        label="Join the loyalty program", required=False,
        help_text="Earn points on every purchase, at every store.")
