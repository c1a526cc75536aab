"""Every page says where it is the same way: one breadcrumb trail (a nav named
"Breadcrumb"), the pages above it as links and the page itself last, marked current."""

import re

import pytest
from django.urls import reverse

from tests.factories import PersonaFactory, RetailStoreFactory

# (url name, args, the trail as shown: (label, linked to url name or None))
PAGES = [
    ("store_list", [], [("Settings", None), ("Retail stores", "")]),
    ("store_create", [], [("Settings", None), ("Retail stores", "store_list"), ("Add a retail store", "")]),
    ("store_edit", ["store"], [("Settings", None), ("Retail stores", "store_list"), ("Denver", "")]),
    ("api_key_list", [], [("Settings", None), ("API keys", "")]),
    ("security_settings", [], [("Settings", None), ("Security", "")]),
    ("branding_settings", [], [("Settings", None), ("Branding", "")]),
    ("audit_activity", [], [("Settings", None), ("Activity", "")]),
    ("loyalty_program", [], [("Settings", None), ("Loyalty program", "")]),
    ("loyalty_page_settings", [], [("Settings", None), ("Loyalty page", "")]),
    ("offer_list", [], [("Settings", None), ("Offers", "")]),
    ("offer_create", [], [("Settings", None), ("Offers", "offer_list"), ("Add an offer", "")]),
    ("prompt_list", [], [("Settings", None), ("POS prompts", "")]),
    ("prompt_create", [], [("Settings", None), ("POS prompts", "prompt_list"), ("Add a POS prompt", "")]),
    ("webhook_list", [], [("Settings", None), ("Webhooks", "")]),
    ("integration_catalog", [], [("Settings", None), ("Integrations", "")]),
    ("integration_grid", [], [("Settings", None), ("Integrations", "integration_catalog"),
                              ("Integration grid", "")]),
    ("audience_list", [], [("Marketing", None), ("Audiences", "")]),
    ("audience_new", [], [("Marketing", None), ("Audiences", "audience_list"), ("New audience", "")]),
    ("analytics", [], [("Marketing", None), ("Analytics", "")]),
    ("persona_detail", ["persona"], [("Customers", None), ("Personas", "persona_list"), ("Dana Green", "")]),
    ("queue_home", [], [("Customers", None), ("Waiting room", "")]),
    ("queue_store", ["queue"], [("Customers", None), ("Waiting room", "queue_home"), ("Denver queue", "")]),
]


def trail(html: str) -> list[tuple[str, str | None]]:
    navs = re.findall(r'<nav class="crumbs" aria-label="Breadcrumb"[^>]*>(.*?)</nav>', html, re.S)
    assert len(navs) == 1, f"{len(navs)} breadcrumb trails"
    items = re.findall(r"<li( aria-current=\"page\")?>(.*?)</li>", navs[0], re.S)
    out = []
    for current, inner in items:
        link = re.search(r'<a href="([^"]+)">(.*?)</a>', inner)
        label = re.sub(r"<[^>]+>", "", inner).strip()
        out.append((label, "" if current else (link.group(1) if link else None)))
    return out


@pytest.mark.parametrize("name, args, expected", PAGES, ids=[p[0] for p in PAGES])
def test_each_page_has_one_breadcrumb_trail_ending_at_itself(admin_client, company, name, args, expected):
    store = RetailStoreFactory(company=company, name="Denver", opt_in_queue_enabled=True)
    RetailStoreFactory(company=company, name="Boulder", opt_in_queue_enabled=True)  # a choice of queues
    persona = PersonaFactory(company=company, first_name="Dana", last_name="Green")
    objects = {"store": store.pk, "queue": store.pk, "persona": persona.pk}
    response = admin_client.get(reverse(name, args=[objects[a] for a in args]))
    assert response.status_code == 200
    html = response.content.decode()
    want = [(label, reverse(url) if url else url) for label, url in expected]
    assert trail(html) == want
    assert 'class="back"' not in html  # the old "← Back" links are gone


def test_a_hint_that_names_a_page_links_to_it(admin_client, company):
    html = admin_client.get(reverse("offer_create")).content.decode()
    assert f'add them under <a href="{reverse("loyalty_program")}">Loyalty program</a>' in html
