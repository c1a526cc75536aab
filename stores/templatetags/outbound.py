from django import template

from stores.outbound import outbound_allow_hosts as allow_hosts

register = template.Library()


@register.simple_tag
def outbound_allow_hosts() -> list[str]:
    """settings.OUTBOUND_ALLOW_HOSTS, for the operator's admin index."""
    return allow_hosts()
