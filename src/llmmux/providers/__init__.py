"""Provider types: the registry table, the base interface, one module per native API."""

from .base import HealthResult, Provider, ProviderType
from .http_provider import ErrorFormat, HTTPProvider
from .mock_transport import MockReply, MockTransport
from .registry import PROVIDER_TYPES, create_provider, provider_types
from .transport import Http1Transport, Transport, UpstreamRequest, UpstreamResponse, UpstreamStream

__all__ = [
    "PROVIDER_TYPES",
    "ErrorFormat",
    "HTTPProvider",
    "HealthResult",
    "Http1Transport",
    "MockReply",
    "MockTransport",
    "Provider",
    "ProviderType",
    "Transport",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamStream",
    "create_provider",
    "provider_types",
]
