from django.urls import path

from . import views, views_activity, views_signin

urlpatterns = [
    path("company/switch/", views.company_switch, name="company_switch"),
    path("settings/stores/", views.store_list, name="store_list"),
    path("settings/stores/new/", views.store_create_view, name="store_create"),
    path("settings/stores/<int:store_id>/edit/", views.store_edit, name="store_edit"),
    path("settings/api-keys/", views.api_key_list, name="api_key_list"),
    path("settings/api-keys/<int:key_id>/", views.api_key_detail, name="api_key_detail"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("settings/security/", views.security_settings, name="security_settings"),
    path("settings/branding/", views.branding_settings, name="branding_settings"),
    path("branding/logo", views.branding_logo, name="branding_logo"),
    path("branding.css", views.branding_css, name="branding_css"),
    path("login/code/", views_signin.login_code, name="login_code"),
    path("account/two-factor/", views_signin.two_factor, name="two_factor"),
    path("account/two-factor/confirm/", views_signin.two_factor_confirm, name="two_factor_confirm"),
    path("account/two-factor/recovery-codes/", views_signin.two_factor_recovery_codes,
         name="two_factor_recovery_codes"),
    path("account/two-factor/turn-off/", views_signin.two_factor_disable_view, name="two_factor_disable"),
    path("settings/activity/", views_activity.activity, name="audit_activity"),
    path("settings/activity/export.csv", views_activity.activity_export, name="audit_activity_export"),
]
