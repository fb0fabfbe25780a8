"""The one masker: which secrets a config holds, and how they are scrubbed from what leaves."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmmux.config.loader import config_from_dict
from llmmux.config.model import mask
from llmmux.masking import _PATTERNS, Masker, _masked, config_secrets


def test_every_credential_in_a_config_is_a_secret_and_nothing_else_is() -> None:
    config, problems = config_from_dict(
        {
            "server": {"master_key": "sk-master-0123456789abcdef"},
            "ledger": {"database_url": "postgresql://llmmux:pg-password-42@db/llmmux"},
            "providers": {
                "openai": {"type": "openai", "api_key": "provider-key-0123456789", "models": ["gpt-4o"]},
                "proxy": {
                    "type": "openai_compatible",
                    "base_url": "http://proxy.internal/v1",
                    "headers": {"X-Proxy-Authorization": "Bearer proxy-token-abcdef", "X-Team": "research"},
                    "models": ["llama3"],
                },
            },
        }
    )
    assert not problems.errors, list(problems)
    found = set(config_secrets(config))
    assert {"sk-master-0123456789abcdef", "pg-password-42", "provider-key-0123456789", "proxy-token-abcdef"} <= found
    assert "research" not in found and "llama3" not in found


def test_known_secrets_go_whatever_their_shape_and_credential_shapes_go_too() -> None:
    masker = Masker(["plain-looking-secret-value"])
    text = "token plain-looking-secret-value; Authorization: Bearer abcdefghij; key sk-abcdefghijklmnop"
    clean = masker.scrub(text)
    assert (
        "plain-looking-secret-value" not in clean and "abcdefghij" not in clean and "sk-abcdefghijklmnop" not in clean
    )
    assert "Authorization: Bearer " in clean  # the scheme stays readable


def test_a_reload_replaces_the_known_secrets_for_every_holder() -> None:
    masker = Masker(["old-secret-value-1"])
    holder = masker  # the log formatter, accounting and the app share this object
    masker.reset(["new-secret-value-2"])
    assert holder.scrub("new-secret-value-2 old-secret-value-1") == "new**** old-secret-value-1"


def test_bytes_that_are_not_utf8_pass_through_unchanged() -> None:
    masker = Masker(["a-secret-value"])
    assert masker.scrub_bytes(b"\xff\xfe a-secret-value") == b"\xff\xfe a-s****"
    body = b'{"ok": true}'
    assert masker.scrub_bytes(body) is body


# The masker finds where its patterns may match by a word search of the lowered text (one
# automaton for every word and known secret) instead of running every pattern over all of
# it; `reference` is what it must equal: every secret replaced, then every pattern applied.
SECRETS = ["plain-looking-secret-value", "provider-KEY-0123456789", "ключ-секрет-123"]


def reference(text: str, secrets: list[str] = SECRETS) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, mask(secret))
    for pattern in _PATTERNS:
        text = pattern.sub(_masked, text)
    return text


PIECES = [
    *SECRETS,
    "Bearer ",
    "bearer\t",
    "BEARER",
    "authorization",
    "Authorization: ",
    '"api_key":"',
    "x-api-key=",
    "apikey ",
    "password",
    "PASSWORD = '",
    "secret:",
    "token",
    '"max_tokens":',
    "sk-",
    "pk-",
    "rk-",
    "xsk-",
    "K-",
    "://",
    "https://user:",
    "@host",
    "abcdefghijklmnop",
    "0123456789",
    "****",
    " ",
    "\n",
    "\x00",
    '"',
    "'",
    ":",
    "=",
    "ſecret: ",  # matched as `secret` by the case-insensitive pattern, though lowering leaves it
    "paſſword=",
    "apı_key: ",
    "İ",  # lengthens when lowered
    "\u212a",  # the Kelvin sign: lowers to k
    "é",
    "日本",
    "\udcff",  # an undecodable byte, as scrub_bytes hands it over
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=24))
def test_scrub_equals_every_pattern_over_the_whole_text(parts: list[str]) -> None:
    text = "".join(parts)
    assert Masker(SECRETS).scrub(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "provider-KEY-0123456789",  # a secret that is the whole text
        "x provider-KEY-0123456789",  # at the end
        "provider-KEY-0123456789\x00{}",  # before a separator of joined bodies
        "{}\x00PROVIDER-key-0123456789",  # another case: not the secret
        "Bearer abcdefghij",  # a pattern at the start
        "abc Bearer abcdefghij",  # at the end
        '{"max_tokens":32}\x00{"token":"abcdefghijkl"}',  # a name that is one, after one that is not
        "token",  # a name at the very end: nothing can follow
        "sk-abcdefghijklmnop",  # a key at the very start
        "日本 Bearer abcdefghij é",  # other scripts around
        "ſecret: abcdefghij",
        "apı_key: abcdefghij",
        "\udcff token=abcdefghij",
        "ключ-секрет-123 и Bearer abcdefghij",
    ],
)
def test_scrub_at_the_edges_of_a_text(text: str) -> None:
    assert Masker(SECRETS).scrub(text) == reference(text)


def test_a_secret_and_a_credential_word_that_overlap_are_both_found() -> None:
    masker = Masker(["mysecret-token-value"])
    assert masker.scrub("mysecret-token-value token: abcdefghij") == "mys**** token: ****"
