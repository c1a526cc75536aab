from django.urls import path

from . import views

urlpatterns = [
    path("personas/", views.persona_list, name="persona_list"),
    path("personas/<int:persona_id>/", views.persona_detail, name="persona_detail"),
    path("personas/<int:persona_id>/enroll/", views.persona_enroll_view, name="persona_enroll"),
    path("personas/<int:persona_id>/points/adjust/", views.persona_points_adjust,
         name="persona_points_adjust"),
]
