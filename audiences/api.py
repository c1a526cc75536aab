"""The audiences API (/api/v1/audiences/): list, create, count, detail, members, refresh.

Same authentication, levels and error bodies as the POS API (an `X-Account-UID` and a
`Bearer` API key; `{"code", "detail", "field", "request_id", ...}` on every refusal).
Every call needs a key of level 1 or more: level 0 keys only push sales, and an
audience's members are customer data a level-1 ("push and pull") key may already read
through lookup. Creating and recalculating an audience is allowed at level 1 too: level 2
only adds webhooks to the POS, and level-1 keys already change data (redeem, lock, offer
purchases). Thin views: serializers check shapes, `audiences.services` validates the rule
tree and acts.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from loyalty.api import PosActionView, PosView
from loyalty.api_input import TextField
from loyalty.api_schema import example, operation
from stores.errors import DomainError

from .models import Audience, AudienceMember
from .services import (
    AudienceRefused,
    audience_count,
    audience_refresh,
    audience_save,
    rules_validate,
)

MEMBERS_DEFAULT_LIMIT = 100
MEMBERS_MAX_LIMIT = 1000

RULES_HELP = (
    'A rule tree: {"type": "group", "match": "all" | "any", "negate": false, "children": [...]} '
    'whose children are groups or conditions {"type": "condition", "trait": "sms_opt_in", '
    '"operator": "equals", "value": true, "negate": false}.')


# --- serializers --------------------------------------------------------------------------

class AudienceWriteSerializer(serializers.Serializer):
    name = TextField(max_length=120)
    description = TextField(max_length=300, required=False, allow_blank=True, default="")
    rules = serializers.JSONField(help_text=RULES_HELP)


class AudienceUpdateSerializer(serializers.Serializer):
    name = TextField(max_length=120, required=False)
    description = TextField(max_length=300, required=False, allow_blank=True)
    rules = serializers.JSONField(required=False, help_text=RULES_HELP)


class CountSerializer(serializers.Serializer):
    rules = serializers.JSONField(help_text=RULES_HELP)


class AudienceSummarySerializer(serializers.Serializer):
    """The last calculation of an audience (`calculated_at` null: never calculated)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    size = serializers.IntegerField()
    sms_opt_ins = serializers.IntegerField()
    email_opt_ins = serializers.IntegerField()
    average_cltv = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    calculated_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True, help_text="Why the last calculation failed, if it did.")


class AudienceDetailSerializer(AudienceSummarySerializer):
    description = serializers.CharField(allow_blank=True)
    rules = serializers.JSONField(help_text=RULES_HELP)
    template_key = serializers.CharField(allow_blank=True)
    entered = serializers.IntegerField(help_text="Members added by the last calculation.")
    exited = serializers.IntegerField(help_text="Members removed by the last calculation.")
    calculation_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    first_name = serializers.CharField(allow_blank=True)
    last_name = serializers.CharField(allow_blank=True)
    email = serializers.CharField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)
    sms_opt_in = serializers.BooleanField()
    email_opt_in = serializers.BooleanField()
    is_member = serializers.BooleanField()
    points_balance = serializers.IntegerField()


LIST = inline_serializer("AudienceList", fields={"audiences": AudienceSummarySerializer(many=True)})
COUNT = inline_serializer("AudienceCount", fields={"count": serializers.IntegerField()})
MEMBERS = inline_serializer("AudienceMembers", fields={
    "audience_id": serializers.IntegerField(),
    "calculated_at": serializers.DateTimeField(allow_null=True),
    "members": MemberSerializer(many=True),
    "next_cursor": serializers.CharField(allow_null=True,
                                         help_text="Pass as `cursor` for the next page; null on the last."),
})

RULES_EXAMPLE = {"type": "group", "match": "all", "negate": False, "children": [
    {"type": "condition", "trait": "sms_opt_in", "operator": "equals", "value": True, "negate": False}]}
SUMMARY_EXAMPLE = {"id": 4, "name": "SMS opt-ins", "size": 1200, "sms_opt_ins": 1200, "email_opt_ins": 800,
                   "average_cltv": "312.40", "calculated_at": "2026-12-04T17:16:25+00:00", "error": ""}
DETAIL_EXAMPLE = {**SUMMARY_EXAMPLE, "description": "", "rules": RULES_EXAMPLE, "template_key": "",
                  "entered": 12, "exited": 3, "calculation_ms": 84,
                  "created_at": "2026-11-01T09:00:00+00:00", "updated_at": "2026-12-04T17:16:25+00:00"}
RULES_CODES = ["invalid_rules"]
SAVE_CODES = ["invalid_rules", "error", "calculation_failed"]


# --- bodies ---------------------------------------------------------------------------------

def _summary(audience: Audience) -> dict:
    return {"id": audience.pk, "name": audience.name, "size": audience.size,
            "sms_opt_ins": audience.sms_opt_ins, "email_opt_ins": audience.email_opt_ins,
            "average_cltv": f"{audience.average_cltv:.2f}",
            "calculated_at": audience.calculated_at.isoformat() if audience.calculated_at else None,
            "error": audience.error}


def _detail(audience: Audience) -> dict:
    return {**_summary(audience), "description": audience.description, "rules": audience.rules,
            "template_key": audience.template_key, "entered": audience.entered, "exited": audience.exited,
            "calculation_ms": audience.calculation_ms, "created_at": audience.created_at.isoformat(),
            "updated_at": audience.updated_at.isoformat()}


def _calculated(audience: Audience) -> Audience:
    """The audience after a calculation; a failed one keeps its saved rules and says why
    in `error` (the save itself succeeded)."""
    try:
        return audience_refresh(audience=audience)
    except AudienceRefused:
        audience.refresh_from_db()
        return audience


# --- views ----------------------------------------------------------------------------------

class AudienceView(PosView):
    def audience(self, audience_id) -> Audience:
        """One audience of the caller's company; another company's id is a 404, as a missing one is."""
        audience = Audience.objects.filter(company=self.company, pk=audience_id).first()
        if audience is None:
            raise Http404("No such audience.")
        return audience


class AudienceListView(PosActionView, AudienceView):
    @extend_schema(**operation(
        level=1, summary="The company's audiences, with their last calculation", responses={200: LIST},
        tags=["audiences"], operation_id="audiences_list",
        examples=[example("Audiences", {"audiences": [SUMMARY_EXAMPLE]})]))
    def get(self, request):
        audiences = Audience.objects.filter(company=self.company).order_by("name", "id")
        return Response({"audiences": [_summary(a) for a in audiences]})

    @extend_schema(**operation(
        level=1, idempotent=True, body=True, request=AudienceWriteSerializer,
        responses={201: AudienceDetailSerializer}, invalid=SAVE_CODES,
        summary="Create an audience from a rule tree and calculate it", tags=["audiences"],
        operation_id="audiences_create",
        examples=[example("Create", {"name": "SMS opt-ins", "rules": RULES_EXAMPLE}, request=True),
                  example("Created", DETAIL_EXAMPLE, status=201)]))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle(self, request):
        data = self.valid(AudienceWriteSerializer)
        audience = audience_save(company=self.company, name=data["name"], rules=data["rules"],
                                 description=data["description"])
        return Response(_detail(_calculated(audience)), status=201)


class AudienceCountView(AudienceView):
    @extend_schema(**operation(
        level=1, body=True, request=CountSerializer, responses={200: COUNT}, invalid=RULES_CODES,
        summary="How many customers a rule tree selects now, without saving it",
        tags=["audiences"], operation_id="audiences_count",
        examples=[example("Count", {"rules": RULES_EXAMPLE}, request=True),
                  example("Counted", {"count": 1200})]))
    def post(self, request):
        data = self.valid(CountSerializer)
        rules = rules_validate(company=self.company, rules=data["rules"])
        return Response({"count": audience_count(company=self.company, rules=rules)})


class AudienceDetailView(AudienceView):
    @extend_schema(**operation(
        level=1, responses={200: AudienceDetailSerializer}, not_found=["not_found"],
        summary="One audience with its rule tree", tags=["audiences"], operation_id="audiences_retrieve",
        examples=[example("Audience", DETAIL_EXAMPLE)]))
    def get(self, request, audience_id: int):
        return Response(_detail(self.audience(audience_id)))

    @extend_schema(**operation(
        level=1, body=True, request=AudienceUpdateSerializer, responses={200: AudienceDetailSerializer},
        invalid=SAVE_CODES, not_found=["not_found"],
        summary="Rename an audience or change its rules; it is recalculated", tags=["audiences"],
        operation_id="audiences_update",
        examples=[example("Rename", {"name": "Texting customers"}, request=True),
                  example("Updated", {**DETAIL_EXAMPLE, "name": "Texting customers"})]))
    def patch(self, request, audience_id: int):
        audience = self.audience(audience_id)
        data = self.valid(AudienceUpdateSerializer)
        audience = audience_save(company=self.company, audience=audience,
                                 name=data.get("name", audience.name),
                                 rules=data.get("rules", audience.rules),
                                 description=data.get("description", audience.description))
        return Response(_detail(_calculated(audience)))


class AudienceMembersView(AudienceView):
    @extend_schema(
        **operation(
            level=1, parameters=[
                OpenApiParameter("cursor", str, description="The `next_cursor` of the previous page"),
                OpenApiParameter("limit", int, description=f"At most {MEMBERS_MAX_LIMIT}; "
                                                           f"default {MEMBERS_DEFAULT_LIMIT}"),
            ], responses={200: MEMBERS}, invalid=["invalid"], not_found=["not_found"],
            summary="The members of the audience's last calculation, by customer id", tags=["audiences"],
            operation_id="audiences_members",
            examples=[example("Members", {
                "audience_id": 4, "calculated_at": "2026-12-04T17:16:25+00:00", "next_cursor": "123",
                "members": [{"id": 123, "first_name": "Dana", "last_name": "Reyes",
                             "email": "dana@example.com", "phone": "+17209026752", "sms_opt_in": True,
                             "email_opt_in": False, "is_member": True, "points_balance": 250}]})]))
    def get(self, request, audience_id: int):
        audience = self.audience(audience_id)
        limit = self.number("limit", MEMBERS_DEFAULT_LIMIT)
        limit = max(1, min(MEMBERS_MAX_LIMIT, limit))
        after = self.number("cursor", 0)
        rows = list(AudienceMember.objects.filter(audience=audience, persona_id__gt=after)
                    .select_related("persona").order_by("persona_id")[:limit + 1])
        page = rows[:limit]
        members = [{"id": m.persona.pk, "first_name": m.persona.first_name, "last_name": m.persona.last_name,
                    "email": m.persona.email, "phone": m.persona.phone, "sms_opt_in": m.persona.sms_opt_in,
                    "email_opt_in": m.persona.email_opt_in, "is_member": m.persona.is_member,
                    "points_balance": m.persona.points_balance} for m in page]
        calculated_at = audience.calculated_at.isoformat() if audience.calculated_at else None
        return Response({"audience_id": audience.pk, "calculated_at": calculated_at, "members": members,
                         "next_cursor": str(page[-1].persona_id) if len(rows) > limit else None})

    def number(self, name: str, default: int) -> int:
        raw = self.request.query_params.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if not 0 <= value <= 2**62:
            raise DomainError(f"{name}: a whole number.", code="invalid", extra={"field": name})
        return value


class AudienceRefreshView(PosActionView, AudienceView):
    @extend_schema(**operation(
        level=1, idempotent=True, request=None, responses={200: AudienceDetailSerializer},
        invalid=["calculation_failed"], not_found=["not_found"],
        summary="Calculate the audience now (members, entered, exited)", tags=["audiences"],
        operation_id="audiences_refresh", examples=[example("Calculated", DETAIL_EXAMPLE)]))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle(self, request, audience_id: int):
        audience = audience_refresh(audience=self.audience(audience_id))
        return Response(_detail(audience))
