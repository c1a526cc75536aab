"""The POS API's quick start and its Postman collection, next to the Swagger page: public,
like /api/schema/ and /api/docs/."""

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from drf_spectacular.generators import SchemaGenerator

from stores.models import IntegrationLevel

from . import api_guide


@require_GET
def api_guide_view(request):
    def steps(flow):
        return [{"step": s, "shell": api_guide.shell_step(s)} for s in flow]

    return render(request, "loyalty/api_guide.html", {
        "setup": api_guide.shell_setup(),
        "counter_flow": steps(api_guide.COUNTER_FLOW),
        "return_flow": steps(api_guide.RETURN_FLOW),
        "webhook_example": api_guide.WEBHOOK_VERIFY_EXAMPLE,
        "levels": IntegrationLevel.choices,
        "demo_external_id": api_guide.DEMO_EXTERNAL_ID,
        "demo_offer": api_guide.DEMO_OFFER_NAME,
    })


@require_GET
def api_postman_view(request):
    openapi = SchemaGenerator().get_schema(request=None, public=True)
    base_url = request.build_absolute_uri("/").rstrip("/")
    collection = api_guide.postman_collection(openapi, base_url=base_url)
    response = JsonResponse(collection, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = 'attachment; filename="loyalty-pos-api.postman_collection.json"'
    return response
