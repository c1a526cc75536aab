from django import template

register = template.Library()


@register.inclusion_tag("waitingroom/checkin_link.html", takes_context=True)
def checkin_link(context, store):
    """The store's kiosk link and its QR code, for the store's settings page."""
    from ..views import checkin_link_context

    return checkin_link_context(context["request"], store)
