"""Client-side limits: token buckets for rpm and tpm, and concurrency caps, per provider."""

from .bucket import BucketState, TokenBucket
from .limiter import Limiter, Permit
from .provider_limits import LimitsConfig, ProviderLimits, parse_limits

__all__ = ["BucketState", "Limiter", "LimitsConfig", "Permit", "ProviderLimits", "TokenBucket", "parse_limits"]
