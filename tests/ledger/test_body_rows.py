"""Body rows redacted many bodies to a pass: each row comes out as if redacted alone."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmmux.ledger.body_rows import REDACT_TOGETHER, HeaderPieces, Item, item_rows, joinable
from llmmux.logs import Redactor
from llmmux.masking import Masker

SECRET = "provider-secret-0123456789"
HEADERS = [(b"authorization", b"Bearer sk-client-key-0123456789"), (b"user-agent", b"pytest")]


def items(*bodies: tuple[str, str]) -> list[Item]:
    return [(f"r{i}", float(i), HEADERS, req.encode(), resp.encode()) for i, (req, resp) in enumerate(bodies)]


def alone(item: Item, redact: Redactor) -> tuple[object, ...]:
    return item_rows([item], redact, 65536)[0]


def test_secrets_at_the_edges_of_every_body_of_several_passes_are_masked() -> None:
    redact = Redactor(Masker([SECRET]).scrub, [r"\d{16}"])
    bodies = [(f"{SECRET} ask {i} 1234567812345678", f"reply {i} {SECRET}") for i in range(REDACT_TOGETHER * 2 + 3)]
    rows = item_rows(items(*bodies), redact, 65536)
    assert [row[0] for row in rows] == [f"r{i}" for i in range(len(bodies))]
    for i, row in enumerate(rows):
        text = " ".join(str(v) for v in row)
        assert SECRET not in text and "1234567812345678" not in text and "sk-client-key" not in text
        assert f"ask {i} " in text and f"reply {i} " in text and "Bearer ****" in text


def test_a_match_that_would_run_into_the_next_body_leaves_it_whole() -> None:
    redact = Redactor(Masker([SECRET]).scrub)
    cut_short = ('{"prompt": "password=abcdefghijklmnop', "{}")  # a body cut mid-value: nothing ends it
    url = ('{"see":"https://user:', "{}")  # a password in a URL whose @ would be in the next body
    after = ('{"mail":"x@example.com","q":"naïve ü"}', '{"token": "qrstuvwxyzabcdef"}')
    batch = items(cut_short, after, url, after)
    rows = item_rows(batch, redact, 65536)
    assert rows == [alone(item, redact) for item in batch]
    assert rows[0][3] == '{"prompt": "password=abc****' and rows[1][3] == after[0] and rows[3][3] == after[0]
    assert "qrstuvwxyzabcdef" not in str(rows[1][4]) and "qrstuvwxyzabcdef" not in str(rows[3][4])


def test_a_rule_anchored_at_a_text_s_start_or_end_sees_each_text_alone() -> None:
    patterns = [r"^\{\"internal", r"secret-tail\"\}$"]
    assert not joinable(patterns) and joinable([r"\d{16}"])
    redact = Redactor(Masker().scrub, patterns)
    batch = items(('{"internal": 1}', '{"a": "secret-tail"}'), ('{"internal": 2}', '{"b": "secret-tail"}'))
    rows = item_rows(batch, redact, 65536, together=False)
    assert [(r[3], r[4]) for r in rows] == [
        ('[redacted]": 1}', '{"a": "[redacted]'),
        ('[redacted]": 2}', '{"b": "[redacted]'),
    ]


# What the masker looks for, and text around it: ASCII, non-ASCII, NULs, the JSON a body holds.
PIECES = [
    SECRET,
    SECRET.upper(),
    "Bearer ",
    "authorization",
    '"api_key":"',
    "token: ",
    '"max_tokens":',
    "sk-",
    "https://user:",
    "@host",
    "abcdefghijklmnop",
    " ",
    "\x00",
    '"',
    "é",
    "ſecret: ",
]
TEXTS = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=12).map("".join)
HEADER_VALUES = st.sampled_from([b"pytest", b"Bearer sk-client-key-0123456789", SECRET.encode(), b"x://u:p@h"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(TEXTS, TEXTS), min_size=1, max_size=REDACT_TOGETHER + 2),
    st.lists(st.tuples(st.sampled_from([b"user-agent", b"x-auth", b"authorization"]), HEADER_VALUES), max_size=3),
)
def test_searching_ascii_bodies_as_bytes_redacts_each_exactly_as_alone(
    bodies: list[tuple[str, str]], headers: list[tuple[bytes, bytes]]
) -> None:
    """The masker alone: only texts holding one of its words are redacted, each as if alone
    (not joined: a joined pass may mask more, where a match runs on past a body's end)."""
    masker = Masker([SECRET])
    batch = [
        (f"r{i}", float(i), headers, req.encode(errors="surrogatepass"), resp.encode(errors="surrogatepass"))
        for i, (req, resp) in enumerate(bodies)
    ]
    redact = Redactor(masker.scrub)
    fast = item_rows(batch, redact, 65536, word_starts=masker.ascii_word_starts, headers=HeaderPieces(masker.scrub))
    assert fast == item_rows(batch, redact, 65536, together=False)


def test_headers_not_yet_redacted_are_redacted_on_the_fast_path_too() -> None:
    masker = Masker([SECRET])
    batch = [("r0", 0.0, [(b"x-team", SECRET.encode()), *HEADERS], b'{"q": "hi"}', f'{{"a": "{SECRET}"}}'.encode())]
    redact = Redactor(masker.scrub)
    rows = item_rows(batch, redact, 65536, word_starts=masker.ascii_word_starts)  # the default pieces: unredacted
    assert rows == item_rows(batch, redact, 65536, together=False)
    assert SECRET not in str(rows) and "sk-client-key" not in str(rows)
