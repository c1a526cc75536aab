from django.urls import path

from . import views, views_cova
from .views_cova import report_connection_only as reports

# Included under settings/integrations/.
urlpatterns = [
    path("", views_cova.integration_catalog, name="integration_catalog"),
    path("grid/", views_cova.integration_grid, name="integration_grid"),
    # Report connections (S3, OneDrive, folder). A Cova connection's id here, or "Add
    # connection" with Cova, goes to the Cova pages.
    path("reports/", views.connection_list, name="connection_list"),
    path("new/", views_cova.connection_create, name="connection_create"),
    path("template/<str:provider>.csv", views.report_template_csv, name="report_template_csv"),
    path("<int:connection_id>/", reports(views.connection_detail), name="connection_detail"),
    path("<int:connection_id>/edit/", reports(views.connection_edit), name="connection_edit"),
    path("<int:connection_id>/test/", reports(views.connection_test_view), name="connection_test"),
    path("<int:connection_id>/sync/", reports(views.connection_sync_now), name="connection_sync"),
    path("<int:connection_id>/freeze/", reports(views.connection_freeze_view), name="connection_freeze"),
    # Report and Cova connections alike.
    path("<int:connection_id>/delete/", views.connection_delete_view, name="connection_delete"),
    path("<int:connection_id>/headers/", reports(views.header_mapping), name="connection_header_mapping"),
    path("<int:connection_id>/stores/", reports(views.store_mappings), name="connection_store_mappings"),
    path("runs/<int:run_id>/", views.sync_run_detail, name="sync_run_detail"),
    path("runs/<int:run_id>/again/", views.sync_run_again, name="sync_run_again"),
    path("files/<int:file_id>/errors/", views.row_errors, name="imported_file_errors"),
    path("files/<int:file_id>/errors.csv", views.row_errors_csv, name="imported_file_errors_csv"),
    path("files/<int:file_id>/purge/", views.imported_file_purge_view, name="imported_file_purge"),
    # Cova
    path("cova/connect/", views_cova.cova_connect, name="cova_connect"),
    path("cova/<int:connection_id>/", views_cova.cova_connection, name="cova_connection"),
    path("cova/<int:connection_id>/credentials/new/", views_cova.cova_credential_create,
         name="cova_credential_create"),
    path("cova/credentials/<int:credential_id>/edit/", views_cova.cova_credential_edit,
         name="cova_credential_edit"),
    path("cova/credentials/<int:credential_id>/test/", views_cova.cova_credential_test_view,
         name="cova_credential_test"),
    path("cova/<int:connection_id>/locations/refresh/", views_cova.cova_locations_refresh_view,
         name="cova_locations_refresh"),
    path("cova/credentials/<int:credential_id>/sync/", views_cova.cova_credential_sync,
         name="cova_credential_sync"),
    path("cova/credentials/<int:credential_id>/delete/", views_cova.cova_credential_delete_view,
         name="cova_credential_delete"),
]
