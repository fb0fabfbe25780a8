"""Client-side limits: token buckets for rpm and tpm, and concurrency caps, per provider."""

from ..config.provider_limits import LimitsConfig, ProviderLimits, parse_limits
from .bucket import BucketState, TokenBucket
from .limiter import Limiter, Permit

__all__ = ["BucketState", "Limiter", "LimitsConfig", "Permit", "ProviderLimits", "TokenBucket", "parse_limits"]
