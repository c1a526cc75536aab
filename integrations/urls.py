from django.urls import path

from . import views

# Included under settings/integrations/.
urlpatterns = [
    path("", views.connection_list, name="connection_list"),
    path("new/", views.connection_create_view, name="connection_create"),
    path("template/<str:provider>.csv", views.report_template_csv, name="report_template_csv"),
    path("<int:connection_id>/", views.connection_detail, name="connection_detail"),
    path("<int:connection_id>/edit/", views.connection_edit, name="connection_edit"),
    path("<int:connection_id>/test/", views.connection_test_view, name="connection_test"),
    path("<int:connection_id>/sync/", views.connection_sync_now, name="connection_sync"),
    path("<int:connection_id>/freeze/", views.connection_freeze_view, name="connection_freeze"),
    path("<int:connection_id>/delete/", views.connection_delete_view, name="connection_delete"),
    path("<int:connection_id>/headers/", views.header_mapping, name="connection_header_mapping"),
    path("<int:connection_id>/stores/", views.store_mappings, name="connection_store_mappings"),
    path("runs/<int:run_id>/", views.sync_run_detail, name="sync_run_detail"),
    path("files/<int:file_id>/errors/", views.row_errors, name="imported_file_errors"),
    path("files/<int:file_id>/errors.csv", views.row_errors_csv, name="imported_file_errors_csv"),
    path("files/<int:file_id>/purge/", views.imported_file_purge_view, name="imported_file_purge"),
]
