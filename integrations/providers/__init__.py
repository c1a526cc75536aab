"""Report sources behind one interface. `provider_for(connection)` picks the class from the
connector registry (`integrations.connectors`)."""

from .base import (
    ConnectionProblem,
    ProviderError,
    ReportFile,
    ReportProvider,
)

__all__ = ["ConnectionProblem", "ProviderError", "ReportFile", "ReportProvider", "provider_for"]


def provider_class(kind: str) -> type[ReportProvider]:
    """The registered report connector of that key; KeyError for anything else."""
    from ..connectors import connector_class

    cls = connector_class(kind)
    if not issubclass(cls, ReportProvider):
        raise KeyError(kind)
    return cls


def provider_for(connection) -> ReportProvider:
    """The provider for a saved connection, with its decrypted credentials."""
    return provider_class(connection.provider).for_connection(connection)
