"""Rows to start from. Child rows take their parent's company."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from loyalty.models import Persona, Source
from stores.models import Company, Membership, RetailStore, Role

PASSWORD = "test-pass-123"


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")
    timezone = "America/Denver"


class RetailStoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RetailStore

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Store {n}")
    state = "CO"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    company = factory.SubFactory(CompanyFactory)
    role = Role.ADMIN


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    company = factory.SubFactory(CompanyFactory)
    kind = Source.Kind.POS_API
    name = factory.Sequence(lambda n: f"Source {n}")


class PersonaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Persona

    company = factory.SubFactory(CompanyFactory)
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = factory.Sequence(lambda n: f"Last{n}")
    phone = factory.Sequence(lambda n: f"+1303{2000000 + n:07d}")
    email = factory.Sequence(lambda n: f"person{n}@example.com")
    is_member = True
    enrolled_at = factory.LazyFunction(timezone.now)
    sourced_from = factory.LazyAttribute(lambda o: SourceFactory(company=o.company))


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "loyalty.Tier"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Tier {n}")
    threshold_kind = "lifetime_points"
    threshold = factory.Sequence(lambda n: f"{(n + 1) * 100}.00")
    earn_multiplier = "1.00"


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "loyalty.Offer"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Offer {n}")
    kind = "flat"
    amount = "5.00"
    points_cost = 100


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "loyalty.Prompt"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Prompt {n}")
    condition = "category"
    value = "Flower"
    message = "Mention the grinder sale"
