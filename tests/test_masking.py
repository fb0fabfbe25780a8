"""The one masker: which secrets a config holds, and how they are scrubbed from what leaves."""

from __future__ import annotations

from llmmux.config.loader import config_from_dict
from llmmux.masking import Masker, config_secrets


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
