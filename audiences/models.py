"""Audiences: a rule tree over customer traits, and the personas it selected last time."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from loyalty.models import Persona
from stores.models import Company


class Audience(models.Model):
    class Kind(models.TextChoices):
        RULES = "rules", "Rules"
        # Members are added and removed by hand (Personas › select › Add to audience);
        # calculating one only recounts its members.
        STATIC = "static", "Static"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="audiences")
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RULES)
    # {"type": "group", "match": "all" | "any", "negate": bool, "children": [...]} with
    # conditions {"type": "condition", "trait": key, "operator": op, "value": ..., "negate": bool}.
    rules = models.JSONField(default=dict)
    template_key = models.CharField(max_length=60, blank=True,
                                    help_text="The prebuilt template it came from.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The last calculation.
    size = models.PositiveIntegerField(default=0)
    sms_opt_ins = models.PositiveIntegerField(default=0)
    email_opt_ins = models.PositiveIntegerField(default=0)
    average_cltv = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    entered = models.PositiveIntegerField(default=0)
    exited = models.PositiveIntegerField(default=0)
    calculated_at = models.DateTimeField(null=True, blank=True)
    calculation_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="audience_name_unique"),
            models.CheckConstraint(condition=Q(kind__in=["rules", "static"]), name="audience_kind_known"),
        ]

    def __str__(self) -> str:
        return self.name


class AudienceMember(models.Model):
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="members", db_index=False)
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["audience", "persona"], name="audience_member_unique")]

    def __str__(self) -> str:
        return f"{self.persona_id} in {self.audience_id}"


class PersonaFacts(models.Model):
    """What a persona's purchase history adds up to, recomputed set-wise for a company
    before its audiences are calculated (and by "Recalculate" on the builder), so a count
    over a million customers reads one row per customer instead of their history."""

    persona = models.OneToOneField(Persona, primary_key=True, on_delete=models.CASCADE, related_name="facts")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    order_count = models.PositiveIntegerField(default=0)
    lifetime_spend = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    first_purchase_at = models.DateTimeField(null=True)
    last_purchase_at = models.DateTimeField(null=True)
    used_loyalty_discount = models.BooleanField(default=False)
    segment = models.CharField(max_length=20, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["company", "segment"], name="persona_facts_company_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(order_count__gte=0), name="persona_facts_orders_not_negative"),
        ]

    def __str__(self) -> str:
        return f"facts of {self.persona_id}"
