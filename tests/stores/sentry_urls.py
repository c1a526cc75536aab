from django.urls import path

from config.urls import urlpatterns as app_urlpatterns
from loyalty.api import PosView


class CounterBroke(Exception):
    pass


class BoomView(PosView):
    min_level = 0

    def post(self, request):
        note = request.data.get("note")  # read the body, as a real view would, before it breaks
        raise CounterBroke(f"the counter broke ({len(note)} characters of note)")


urlpatterns = [path("api/pos/v1/boom", BoomView.as_view()), *app_urlpatterns]
