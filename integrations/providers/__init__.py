"""Report sources behind one interface. `provider_for(connection)` picks the class."""

from .base import (
    ConnectionProblem,
    ProviderError,
    ReportFile,
    ReportProvider,
)

__all__ = ["ConnectionProblem", "ProviderError", "ReportFile", "ReportProvider", "provider_for"]


def provider_class(kind: str) -> type[ReportProvider]:
    from .folder import FolderProvider
    from .onedrive import OneDriveProvider
    from .s3 import S3Provider

    return {"s3": S3Provider, "onedrive": OneDriveProvider, "folder": FolderProvider}[kind]


def provider_for(connection) -> ReportProvider:
    """The provider for a saved connection, with its decrypted credentials."""
    return provider_class(connection.provider)(
        settings=connection.settings, credentials=connection.credentials_plain(),
        company_slug=connection.company.slug,
    )
