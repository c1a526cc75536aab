from django import forms


class PhoneForm(forms.Form):
    phone = forms.CharField(
        label="Mobile number", max_length=40,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel",
                                      "placeholder": "(303) 555-0142"}))


class CodeForm(forms.Form):
    code = forms.CharField(
        label="6-digit code", max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "pattern": "[0-9 ]*", "placeholder": "123456", "class": "code-input"}))


class JoinForm(forms.Form):
    first_name = forms.CharField(label="First name", max_length=100,
                                 widget=forms.TextInput(attrs={"autocomplete": "given-name"}))
    last_name = forms.CharField(label="Last name", max_length=100,
                                widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    birth_date = forms.DateField(label="Birth date",
                                 widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}))
    email = forms.EmailField(label="Email", required=False,
                             help_text="Optional: for your receipts and offers.",
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    favourite_store = forms.ModelChoiceField(label="Favourite store", queryset=None,
                                             empty_label="Pick a store")
    sms_consent = forms.BooleanField(required=False)
    email_consent = forms.BooleanField(required=False)

    def __init__(self, *args, stores, wording, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["favourite_store"].queryset = stores
        self.fields["sms_consent"].label = wording["sms"]
        self.fields["email_consent"].label = wording["email"]
