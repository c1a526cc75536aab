from django import template

from loyalty.phone import phone_display

register = template.Library()


@register.filter
def phone(e164: str) -> str:
    """A stored E.164 number the way people read it: (720) 902-6752."""
    return phone_display(e164)
