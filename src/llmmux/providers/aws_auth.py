"""AWS request signing (SigV4) through botocore's signer, with credentials from AWS's standard chain.

botocore is an optional dependency (`pip install 'llmmux[bedrock]'`); only SigV4 needs it.
Credentials are found once, off the event loop (the chain may read files or ask the
instance metadata service), then reused; refreshable ones (SSO, assumed roles, instance
roles) are refreshed off the loop when botocore says they are due.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.credentials import Credentials

INSTALL_HINT = "install botocore (pip install 'llmmux[bedrock]')"


def botocore_available() -> bool:
    try:
        import botocore.auth  # noqa: F401
    except ImportError:
        return False
    return True


class NoCredentials(Exception):
    """No AWS credentials anywhere in the chain (environment, shared files, SSO, instance role)."""


class SigV4Signer:
    """Signs requests for one AWS service and region.

    >>> signer = SigV4Signer("bedrock", "us-east-1")                      # doctest: +SKIP
    >>> headers = await signer.sign("POST", url, body, {"content-type": "application/json"})
    """

    def __init__(self, service: str, region: str, *, profile: str | None = None) -> None:
        self.service = service
        self.region = region
        self.profile = profile
        self._credentials: Credentials | None = None
        self._lock = asyncio.Lock()

    async def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus `Authorization`, `X-Amz-Date` and, for temporary credentials, `X-Amz-Security-Token`."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = await self._frozen()
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(credentials, self.service, self.region).add_auth(request)
        return dict(request.headers.items())

    async def _frozen(self) -> Any:
        credentials = self._credentials or await self._resolve()
        refresh_needed = getattr(credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return await asyncio.to_thread(credentials.get_frozen_credentials)
        return credentials.get_frozen_credentials()

    async def _resolve(self) -> Credentials:
        async with self._lock:
            if self._credentials is None:
                self._credentials = await asyncio.to_thread(_find_credentials, self.profile)
        return self._credentials


def _find_credentials(profile: str | None) -> Credentials:
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        credentials = botocore.session.Session(profile=profile).get_credentials()
    except BotoCoreError as exc:  # an unknown profile, an expired SSO session, ...
        raise NoCredentials(f"cannot load AWS credentials: {exc}") from None
    if credentials is None:
        raise NoCredentials(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run where an instance or task role applies"
        )
    return credentials


def default_region(profile: str | None = None) -> str | None:
    """The region AWS's own tools would use: AWS_REGION, AWS_DEFAULT_REGION, then the profile's config."""
    from ..config.env import lookup

    region = lookup("AWS_REGION") or lookup("AWS_DEFAULT_REGION")
    if region or not botocore_available():
        return region
    import botocore.session

    found = botocore.session.Session(profile=profile).get_config_variable("region")
    return str(found) if found else None
