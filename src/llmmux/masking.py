"""The one masker: every byte that leaves the gateway passes it (errors, health, admin, logs, ledger, metrics).

It replaces the secrets llmmux knows (provider keys, the master key, database passwords)
wherever they occur, and anything shaped like a credential: `Bearer ...`, `sk-...`,
`x-api-key: ...`, `api_key=...`, a password in a URL. The router owns one and refills it on
every config reload, so a provider key added by a hot reload is masked from then on.

>>> masker = Masker(["s3cret-provider-key"])
>>> masker.scrub("upstream said: Authorization: Bearer s3cret-provider-key")
'upstream said: Authorization: Bearer s3c****'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from .config.model import Config, mask

MIN_SECRET_LENGTH = 6
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]{6,})"),
    re.compile(
        r"(?i)((?:api[_-]?key|x-api-key|x-goog-api-key|authorization|password|secret|token)[\"']?\s*[:=]\s*[\"']?"
        r"(?:(?:bearer|basic)\s+)?)"
        r"(?!(?:bearer|basic)\b)([^\s\"',;}&]{6,})"
    ),
    re.compile(r"()(\b(?:sk|pk|rk)-[A-Za-z0-9_-]{12,})"),
    re.compile(r"(://[^:/@\s]+:)([^@\s]+)(?=@)"),
)
# The words each pattern starts with, lowercased, and the pattern's index (`api` covers
# `x-api-key` and `x-goog-api-key` from their `api-key`: the masked value is the same).
_HINTS = (
    ("bearer", 0),
    *((word, 1) for word in ("api", "authorization", "password", "secret", "token")),
    ("k-", 2),  # sk-, pk-, rk-: one scan, the match starts a character earlier
    ("://", 3),
)


class Masker:
    """Replaces known secrets and credential-shaped strings in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        found = {str(s) for s in secrets if s and len(s) >= MIN_SECRET_LENGTH} | set(self._secrets)
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The known secrets, longest first (for a masker built elsewhere: the body redactor process)."""
        return self._secrets

    def reset(self, secrets: Iterable[str | None]) -> None:
        """Replace the known secrets (a config reload): holders of this masker see the new set at once."""
        self._secrets = ()
        self.add(*secrets)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, mask(secret))
        lowered = text.lower()
        if len(lowered) != len(text):  # a few characters lengthen when lowered: positions would not line up
            for pattern in _PATTERNS:
                text = pattern.sub(_masked, text)
            return text
        hits = _hits(lowered)
        if not hits:
            return text
        for index, pattern in enumerate(_PATTERNS):
            starts = hits.get(index)
            if starts:
                changed = _sub_at(pattern, sorted(starts), text)
                if len(changed) != len(text):  # later positions moved: find them again
                    hits = _hits(changed.lower())
                text = changed
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """`scrub` for a body about to be sent; bytes that are not UTF-8 pass through as they were."""
        text = data.decode("utf-8", "surrogateescape")
        clean = self.scrub(text)
        return data if clean == text else clean.encode("utf-8", "surrogateescape")


def _hits(lowered: str) -> dict[int, list[int]]:
    """Positions, by pattern index, wherever a word one of the patterns starts with occurs.

    Finding those words with `str.find` and matching only there costs a few microseconds on
    a prompt where scanning it with the patterns' case-insensitive alternations costs
    hundreds, which matters once whole prompts and replies are masked (body logging).
    """
    found: dict[int, list[int]] = {}
    for word, index in _HINTS:
        at = lowered.find(word)
        while at != -1:
            found.setdefault(index, []).append(at - 1 if index == 2 else at)
            at = lowered.find(word, at + 1)
    return found


def _sub_at(pattern: re.Pattern[str], starts: list[int], text: str) -> str:
    """`pattern.sub(_masked, text)` for matches that begin at one of `starts`."""
    pieces: list[str] = []
    last = 0
    for start in starts:
        if start < last:
            continue
        found = pattern.match(text, max(start, 0))
        if found is not None:
            pieces += (text[last : found.start()], _masked(found))
            last = found.end()
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _masked(match: re.Match[str]) -> str:
    value = match.group(2)
    return match.group(1) + (value if value.endswith("****") else mask(value))


def config_secrets(config: Config) -> list[str]:
    """Every secret in a config: provider keys (and other credential settings), the master key, DB passwords."""
    found: list[str] = []
    for provider in config.providers.values():
        found += [
            str(v) for v in (provider.api_key, *_credentials(provider.extra), *_credentials(provider.headers)) if v
        ]
    if config.server.master_key:
        found.append(str(config.server.master_key))
    if config.ledger.database_url:
        password = urlsplit(str(config.ledger.database_url)).password
        if password:
            found.append(password)
    if config.alerts.webhook_url:
        found.append(str(config.alerts.webhook_url))  # a webhook URL often carries its own token
    if config.state.password:
        found.append(str(config.state.password))
    if config.state.url and (password := urlsplit(str(config.state.url)).password):
        found.append(password)
    return found


_CREDENTIAL_NAME = re.compile(r"(?i)(?:^|[-_])(?:key|secret|token|password|authorization)$")
"""Setting and header names that hold credentials: `aws_secret_access_key`, `session_token`,
`x-api-key`, `Authorization`; not `tokenizer` or `max_tokens`."""


def _credentials(settings: dict[str, str] | dict[str, object]) -> list[str]:
    """Settings besides `api_key` that hold credentials: AWS secret keys, session tokens, auth headers."""
    found = [v for k, v in settings.items() if isinstance(v, str) and _CREDENTIAL_NAME.search(k)]
    return [part for v in found for part in (v, v.rsplit(" ", 1)[-1])]  # "Bearer xyz": xyz alone too
