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

import functools
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import ahocorasick_rs

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
_AFTER_NAME = frozenset("\"':=")  # what may follow a credential's name (pattern 1), whitespace aside
# Characters that a case-insensitive pattern matches to an ASCII letter but that lowering
# leaves apart (ı to i, ſ to s), so a word search of the lowered text would miss them;
# the other two (İ, the Kelvin sign) lengthen or lower to ASCII.
_FOLDS_TO_ASCII = re.compile("[\u0131\u017f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SECRET = -1  # a needle's role: one of the known secrets, lowercased


class _Needles:
    """The hint words and the known secrets, found in one pass over a lowered text.

    One Aho-Corasick automaton (Rust) reads a text once for every word and secret, where a
    `str.find` per word read it once each: on a 2 KB prompt and reply that is a few
    microseconds instead of tens, which body logging pays for every request it stores.
    Secrets with non-ASCII characters are looked for with `in`, as before (lowering them
    is not sure to give what lowering the text around them gives).

    A hint counts only where its pattern could match: a credential's name followed by a
    quote, space, `:` or `=`; `bearer` by a space; `k-` after s, p or r; `://` with an `@`
    after it. ASCII text (most of it) is searched as bytes for the words together with what
    must follow them (`token:`, `token "`, ...), so `max_tokens` and `prompt_tokens`, in
    every JSON body, are not even found; other text for the words, each hit then checked.
    """

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets
        self.unfindable = any(not s.isascii() for s in secrets)
        known = {s.lower() for s in secrets if s.isascii()}
        self.words, self.roles = _needles([(word, index, -1 if index == 2 else 0) for word, index in _HINTS], known)
        self.automaton = ahocorasick_rs.AhoCorasick(self.words)
        ascii_words, self.ascii_roles = _needles(_ASCII_HINTS, known)
        self.ascii_automaton = ahocorasick_rs.BytesAhoCorasick(
            [w.encode() for w in ascii_words], implementation=ahocorasick_rs.Implementation.DFA
        )

    def find(self, lowered: str, text: str) -> tuple[bool, dict[int, list[int]]]:
        """(whether a known secret may occur, the starts of each pattern's possible matches)."""
        if lowered.isascii():
            matches = self.ascii_automaton.find_matches_as_indexes(lowered.encode(), overlapping=True)
            return self._hits(matches, self.ascii_roles, lowered, text, checked=True)
        try:
            matches = self.automaton.find_matches_as_indexes(lowered, overlapping=True)
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes, `scrub_bytes`): one character each still
            matches = self.automaton.find_matches_as_indexes(_SURROGATE.sub("\ufffd", lowered), overlapping=True)
        return self._hits(matches, self.roles, lowered, text, checked=False)

    def _hits(
        self,
        matches: list[tuple[int, int, int]],
        roles: list[tuple[tuple[int, int], ...]],
        lowered: str,
        text: str,
        *,
        checked: bool,
    ) -> tuple[bool, dict[int, list[int]]]:
        secret = self.unfindable
        hits: dict[int, list[int]] = {}
        last_at = -2
        for needle, start, end in matches:
            for role, shift in roles[needle]:
                at = start + shift
                if role == _SECRET:
                    secret = True
                    continue
                if role == 3:
                    if last_at == -2:
                        last_at = lowered.rfind("@")
                    if last_at <= end:
                        continue
                elif not checked and not _may_start(role, at, end - start, lowered, text):
                    continue
                hits.setdefault(role, []).append(at)
        return secret, hits


def _needles(
    hints: Iterable[tuple[str, int, int]], secrets: Iterable[str]
) -> tuple[list[str], list[tuple[tuple[int, int], ...]]]:
    """The automaton's words and, for each, its (pattern index or `_SECRET`, shift to the match's start)."""
    roles: dict[str, set[tuple[int, int]]] = {}
    for word, index, shift in hints:
        roles.setdefault(word, set()).add((index, shift))
    for secret in secrets:
        roles.setdefault(secret, set()).add((_SECRET, 0))
    return list(roles), [tuple(sorted(r)) for r in roles.values()]


_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace())
_ASCII_HINTS = (
    *(("bearer" + c, 0, 0) for c in _ASCII_SPACE),
    *(("api" + c, 1, 0) for c in "_-k"),  # api_key, api-key, apikey
    *((word + c, 1, 0) for word in ("authorization", "password", "secret", "token") for c in _ASCII_SPACE + "\"':="),
    *((p + "k-", 2, 0) for p in "spr"),
    ("://", 3, 0),
)


def _may_start(role: int, at: int, length: int, lowered: str, text: str) -> bool:
    """Whether the pattern `role` may match at `at`, by the character before or after its word."""
    if role == 2:  # `k-` found: the key starts a character earlier, with s, p or r
        return at >= 0 and text[at] in "spr"
    return _may_follow(role, length, lowered[at + length : at + length + 1])


def _may_follow(role: int, length: int, after: str) -> bool:
    """Whether `after`, the character after a pattern-0 or pattern-1 word, lets the pattern go on."""
    if not after:
        return False
    if role == 0 or length != 3:  # bearer, and every credential name but `api`
        return after.isspace() or (role == 1 and after in _AFTER_NAME)
    return after in "_-k"  # api_key, api-key, apikey


class Masker:
    """Replaces known secrets and credential-shaped strings in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._needles = _needles_for(_known(secrets))

    def add(self, *secrets: str | None) -> None:
        # One object swapped in whole: a scrub on another thread sees the old set or the new, never half.
        self._needles = _needles_for(_known((*secrets, *self._needles.secrets)))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The known secrets, longest first (for a masker built elsewhere: the body redactor process)."""
        return self._needles.secrets

    def reset(self, secrets: Iterable[str | None]) -> None:
        """Replace the known secrets (a config reload): holders of this masker see the new set at once."""
        self._needles = _needles_for(_known(secrets))

    def scrub(self, text: str) -> str:
        needles = self._needles
        lowered = text.lower()
        if len(lowered) != len(text) or (not text.isascii() and _FOLDS_TO_ASCII.search(text)):
            return _scrub_everywhere(_replace(needles.secrets, text))
        secret, hits = needles.find(lowered, text)
        if secret:
            replaced = _replace(needles.secrets, text)
            if replaced != text:
                text, lowered = replaced, replaced.lower()
                if len(lowered) != len(text):
                    return _scrub_everywhere(text)
                hits = needles.find(lowered, text)[1]
        if not hits:
            return text
        for index, pattern in enumerate(_PATTERNS):
            starts = hits.get(index)
            if starts:
                changed = _sub_at(pattern, sorted(starts), text)
                if len(changed) != len(text):  # later positions moved: find them again
                    hits = needles.find(changed.lower(), changed)[1]
                text = changed
        return text

    def ascii_word_starts(self, lowered: bytes) -> list[int]:
        """Where a credential word or a known secret starts in lowered ASCII bytes.

        `scrub` changes an ASCII text only at one of these: a text without any comes back
        unchanged, so a caller holding many texts (the body log) hands `scrub` only those
        with one and never decodes the rest. NUL-joined texts are searched at once (no
        word or secret holds a NUL, so each found lies inside one text).
        """
        matches = self._needles.ascii_automaton.find_matches_as_indexes(lowered, overlapping=True)
        return [start for _, start, _ in matches]

    def scrub_bytes(self, data: bytes) -> bytes:
        """`scrub` for a body about to be sent; bytes that are not UTF-8 pass through as they were."""
        text = data.decode("utf-8", "surrogateescape")
        clean = self.scrub(text)
        return data if clean == text else clean.encode("utf-8", "surrogateescape")


def _known(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The secrets worth masking, longest first, so a secret that contains another is replaced whole."""
    found = {str(s) for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


@functools.lru_cache(maxsize=16)
def _needles_for(secrets: tuple[str, ...]) -> _Needles:
    """Built once per set of secrets (some milliseconds: the automatons), shared by every masker holding it."""
    return _Needles(secrets)


def _replace(secrets: tuple[str, ...], text: str) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


def _scrub_everywhere(text: str) -> str:
    """Every pattern over the whole text: what `Masker.scrub` does, the slow way (the reference)."""
    for pattern in _PATTERNS:
        text = pattern.sub(_masked, text)
    return text


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
