from django.urls import path

from . import views

urlpatterns = [
    path("", views.audience_list, name="audience_list"),
    path("refresh/", views.audiences_refresh_all_view, name="audiences_refresh_all"),
    path("templates/<slug:key>/", views.audience_from_template_view, name="audience_from_template"),
    path("new/", views.audience_builder, name="audience_new"),
    path("new/editor/", views.audience_editor, name="audience_editor_new"),
    path("new/count/", views.audience_count_view, name="audience_count_new"),
    path("new/facts/", views.audience_facts_refresh_view, name="audience_facts_new"),
    path("<int:audience_id>/", views.audience_builder, name="audience_builder"),
    path("<int:audience_id>/editor/", views.audience_editor, name="audience_editor"),
    path("<int:audience_id>/count/", views.audience_count_view, name="audience_count"),
    path("<int:audience_id>/facts/", views.audience_facts_refresh_view, name="audience_facts"),
    path("<int:audience_id>/refresh/", views.audience_refresh_view, name="audience_refresh"),
    path("<int:audience_id>/delete/", views.audience_delete_view, name="audience_delete"),
    path("<int:audience_id>/export.csv", views.audience_export, name="audience_export"),
]
