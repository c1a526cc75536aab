from django import forms


class CustomerForm(forms.Form):
    """A field with an error names it (aria-describedby) so a screen reader reads it with the field."""

    def add_error(self, field, error):
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                bound = self[name]
                described = [f"{bound.auto_id}_error"] + ([f"{bound.auto_id}_helptext"]
                                                          if self.fields[name].help_text else [])
                self.fields[name].widget.attrs.update({"aria-describedby": " ".join(described),
                                                       "aria-invalid": "true"})


class PhoneForm(CustomerForm):
    phone = forms.CharField(
        label="Mobile number", max_length=40,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel",
                                      "placeholder": "(303) 555-0142"}))


class CodeForm(CustomerForm):
    code = forms.CharField(
        label="6-digit code", max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "pattern": "[0-9 ]*", "placeholder": "123456", "class": "code-input"}))


class JoinForm(CustomerForm):
    first_name = forms.CharField(label="First name", max_length=100,
                                 widget=forms.TextInput(attrs={"autocomplete": "given-name"}))
    last_name = forms.CharField(label="Last name", max_length=100,
                                widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    birth_date = forms.DateField(label="Birth date",
                                 widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}))
    email = forms.EmailField(label="Email", required=False,
                             help_text="For receipts and offers.",
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


class PreferencesForm(CustomerForm):
    sms_consent = forms.BooleanField(required=False)
    email_consent = forms.BooleanField(required=False)
    favourite_store = forms.ModelChoiceField(label="Favourite store", queryset=None, required=False,
                                             empty_label="No favourite")

    def __init__(self, *args, stores, wording, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["favourite_store"].queryset = stores
        self.fields["sms_consent"].label = wording["sms"]
        self.fields["email_consent"].label = wording["email"]
