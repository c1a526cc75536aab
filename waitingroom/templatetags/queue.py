from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def waited(since):
    """How long since check-in, as a budtender says it: "just now", "7 min", "1 h 05"."""
    if since is None:
        return ""
    minutes = int((timezone.now() - since).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d}"


@register.inclusion_tag("waitingroom/checkin_link.html", takes_context=True)
def checkin_link(context, store):
    """The store's kiosk link and its QR code, for the store's settings page."""
    from ..views import checkin_link_context

    return checkin_link_context(context["request"], store)
