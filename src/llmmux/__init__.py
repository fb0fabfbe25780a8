"""llmmux: one endpoint and one library in front of every LLM backend.

>>> import llmmux                                                            # doctest: +SKIP
>>> async with llmmux.Router.from_config("./config") as router:
...     done = await router.chat(model="chat-main", messages=[{"role": "user", "content": "hi"}])
...     print(done.choices[0].message.content, done.provider, done.attempt_count, done.cost)

For a script, one call: `llmmux.completion(model="smollm2-135m", messages=[...])`.
"""

from .config import Config, ConfigError, Problem, load_config
from .errors import (
    AllAttemptsFailed,
    AuthenticationFailed,
    BodyTooLarge,
    InvalidRequest,
    LLMMuxError,
    ModelLoadFailed,
    ModelNotFound,
    NotSupported,
    PermissionDenied,
    ProvidersUnavailable,
    RateLimited,
    StreamInterrupted,
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from .events import CallContext, RequestRecord
from .oneshot import acompletion, completion
from .providers import HealthResult, Provider, ProviderType, create_provider
from .router import Router
from .routing import ChatStream, Completion, Embeddings, Route
from .sync import SyncRouter
from .types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ImagePart,
    Message,
    ModelInfo,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "AllAttemptsFailed",
    "AuthenticationFailed",
    "BodyTooLarge",
    "CallContext",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "Completion",
    "Config",
    "ConfigError",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "Embeddings",
    "HealthResult",
    "ImagePart",
    "InvalidRequest",
    "LLMMuxError",
    "Message",
    "ModelInfo",
    "ModelLoadFailed",
    "ModelNotFound",
    "NotSupported",
    "PermissionDenied",
    "Problem",
    "Provider",
    "ProviderType",
    "ProvidersUnavailable",
    "RateLimited",
    "RequestRecord",
    "Route",
    "Router",
    "StreamInterrupted",
    "SyncRouter",
    "TextPart",
    "Tool",
    "ToolCall",
    "UpstreamBadResponse",
    "UpstreamClientError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamServerError",
    "UpstreamTimeout",
    "Usage",
    "__version__",
    "acompletion",
    "completion",
    "create_provider",
    "load_config",
]
