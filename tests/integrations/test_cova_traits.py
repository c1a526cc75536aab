"""A Cova customer's pricing group is a custom trait on their persona: set when Cova has
one, changed when Cova's changes, removed when Cova's is cleared; the persona's other
custom traits stay as they are."""

import pytest

from integrations.models import SyncRun
from loyalty.models import Persona
from tests.integrations.cova_fake import cova_server  # noqa: F401 - the fixture
from tests.integrations.test_cova_sync import cova, sync  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def test_the_pricing_group_follows_cova_and_other_traits_stay(company, cova, cova_server, sync):  # noqa: F811
    ana = cova_server.add_customer(FirstName="Ana", Phone="(303) 555-0142", State="CO",
                                   PricingGroupId="Medical")
    assert sync().state == SyncRun.State.SUCCEEDED
    persona = Persona.objects.get(company=company, phone="+13035550142")
    assert persona.custom_traits == {"CovaPricingGroup": "Medical"}
    persona.custom_traits = {**persona.custom_traits, "Vip": "yes"}
    persona.save(update_fields=["custom_traits"])

    cova_server.touch_customer(ana, PricingGroupId="Veteran")
    assert sync().state == SyncRun.State.SUCCEEDED
    persona.refresh_from_db()
    assert persona.custom_traits == {"CovaPricingGroup": "Veteran", "Vip": "yes"}

    cova_server.touch_customer(ana, PricingGroupId=None)
    assert sync().state == SyncRun.State.SUCCEEDED
    persona.refresh_from_db()
    assert persona.custom_traits == {"Vip": "yes"}
