from django.urls import path

from . import views, views_bulk, views_settings

urlpatterns = [
    path("personas/", views.persona_list, name="persona_list"),
    path("personas/bulk/", views_bulk.persona_bulk, name="persona_bulk"),
    path("personas/<int:persona_id>/", views.persona_detail, name="persona_detail"),
    path("personas/<int:persona_id>/enroll/", views.persona_enroll_view, name="persona_enroll"),
    path("personas/<int:persona_id>/merge/", views.persona_merge_view, name="persona_merge"),
    path("personas/<int:persona_id>/erase/", views.persona_erase_view, name="persona_erase"),
    path("personas/<int:persona_id>/points/adjust/", views.persona_points_adjust,
         name="persona_points_adjust"),
    path("personas/<int:persona_id>/wallet/grant/", views.persona_wallet_grant, name="persona_wallet_grant"),
    # Settings › Loyalty program, Offers, POS prompts (admin only).
    path("settings/loyalty/", views_settings.loyalty_program_view, name="loyalty_program"),
    path("settings/loyalty/tiers/new/", views_settings.tier_create_view, name="tier_create"),
    path("settings/loyalty/tiers/<int:tier_id>/edit/", views_settings.tier_edit_view, name="tier_edit"),
    path("settings/loyalty/tiers/<int:tier_id>/delete/", views_settings.tier_delete_view, name="tier_delete"),
    path("settings/offers/", views_settings.offer_list, name="offer_list"),
    path("settings/offers/new/", views_settings.offer_create_view, name="offer_create"),
    path("settings/offers/<int:offer_id>/edit/", views_settings.offer_edit_view, name="offer_edit"),
    path("settings/offers/<int:offer_id>/active/", views_settings.offer_active_view, name="offer_active"),
    path("settings/prompts/", views_settings.prompt_list, name="prompt_list"),
    path("settings/prompts/new/", views_settings.prompt_create_view, name="prompt_create"),
    path("settings/prompts/<int:prompt_id>/edit/", views_settings.prompt_edit_view, name="prompt_edit"),
    path("settings/prompts/<int:prompt_id>/delete/", views_settings.prompt_delete_view, name="prompt_delete"),
]
