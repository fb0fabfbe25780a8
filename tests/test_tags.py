"""Request tags and end-user ids: bounds, sources, and what upstreams receive."""

from __future__ import annotations

import pytest

from llmmux.enduser import EndUserBuckets, end_user_id, parse_end_user_limits
from llmmux.errors import InvalidRequest
from llmmux.tags import MAX_TAG_LENGTH, needle, parse_tags, request_tags, taken, to_column, without_tags


def test_tags_come_from_the_header_metadata_and_defaults_each_once() -> None:
    assert request_tags(b" a, b ,,", ["b", "c"], ["d", "a"]) == ("a", "b", "c", "d")
    assert request_tags(None, "x,y") == ("x", "y")
    assert request_tags(None, None, ["k"]) == ("k",)
    assert request_tags(None, taken({"metadata": {"user_id": "u"}})[1]) == ()


def test_a_door_takes_the_tags_out_of_the_body_it_hands_on() -> None:
    body = {"model": "m", "metadata": {"tags": ["a"], "user_id": "u"}}
    assert taken(body) == ({"model": "m", "metadata": {"user_id": "u"}}, ["a"])
    untagged = {"model": "m", "metadata": {"user_id": "u"}}
    assert taken(untagged) == (untagged, None) and taken(untagged)[0] is untagged


@pytest.mark.parametrize(
    ("header", "metadata", "says"),
    [
        (b"a b", None, "invalid tag"),
        (b"-a", None, "invalid tag"),
        (b'a"b', None, "invalid tag"),
        (("x" * (MAX_TAG_LENGTH + 1)).encode(), None, "invalid tag"),
        (",".join(f"t{i}" for i in range(17)).encode(), None, "at most 16 tags"),
        (None, [1], "expected a list of strings"),
        (None, {"a": 1}, "expected a list of strings or"),
    ],
)
def test_bad_tags_are_refused_with_a_reason(header: bytes | None, metadata: object, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        request_tags(header, metadata)


def test_without_tags_copies_and_keeps_the_rest_of_metadata() -> None:
    body = {"model": "m", "metadata": {"tags": ["a"], "user_id": "u"}}
    assert without_tags(body) == {"model": "m", "metadata": {"user_id": "u"}}
    assert without_tags({"metadata": {"tags": "a"}}) == {}
    assert body["metadata"] == {"tags": ["a"], "user_id": "u"}  # shared by fanned-out calls: untouched
    untagged = {"metadata": {"user_id": "u"}}
    assert without_tags(untagged) is untagged


def test_the_ledger_form_matches_whole_tags_only() -> None:
    column = to_column(("batch2", "a:b"))
    assert column == '["batch2","a:b"]'
    assert needle("batch") not in column and needle("batch2") in column
    assert to_column(()) is None


def test_key_defaults_and_end_user_limits_parse_or_say_why() -> None:
    assert parse_tags("a, b,a") == ["a", "b"]
    with pytest.raises(ValueError, match="invalid tag"):
        parse_tags(["ok", "not ok"])
    assert parse_end_user_limits({"rpm": 5}).public() == {"rpm": 5, "budget": None}  # type: ignore[union-attr]
    assert parse_end_user_limits({}) is None
    for bad in ({"rpm": 0}, {"budget": -1}, {"rpm": "5"}, {"seats": 3}, [5]):
        with pytest.raises(ValueError):
            parse_end_user_limits(bad)


def test_end_user_ids_header_first_bounded_and_hashable() -> None:
    assert end_user_id(b" bob ", "alice", hashed=False) == "bob"
    assert end_user_id(None, "alice", hashed=False) == "alice"
    assert end_user_id(None, "  ", hashed=False) is None
    hashed = end_user_id(None, "alice", hashed=True)
    assert hashed is not None and hashed.startswith("eu_") and "alice" not in hashed
    assert hashed == end_user_id(b"alice", None, hashed=True)
    long = end_user_id(b"x" * 257, None, hashed=False)
    assert long is not None and long.startswith("eu_") and long == end_user_id(None, "x" * 257, hashed=False)
    assert end_user_id(b"x" * 256, None, hashed=False) == "x" * 256


def test_end_user_buckets_are_separate_and_the_least_recent_is_forgotten() -> None:
    now = [0.0]
    buckets = EndUserBuckets(lambda: now[0], max_tracked=2)
    assert buckets.admit("k", "alice", 1) is None
    assert buckets.admit("k", "alice", 1) == pytest.approx(60.0, abs=0.01)
    assert buckets.admit("k", "bob", 1) is None
    assert buckets.admit("k2", "alice", 1) is None  # another key's alice is another end user
    assert buckets.admit("k", "carol", 1) is None  # forgets k/alice (least recently seen)
    assert buckets.admit("k", "alice", 1) is None
    now[0] += 60
    assert buckets.admit("k", "carol", 1) is None
