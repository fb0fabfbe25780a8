"""Tag routes: parsed with clear problems, and matched by tag and requested name."""

from __future__ import annotations

from llmmux.config.fields import FieldReader
from llmmux.config.problems import Problems
from llmmux.config.tag_routes import TagRoute, parse_tag_routes, tag_target
from llmmux.loading import load


def test_rules_parse_and_bad_ones_are_errors() -> None:
    problems = Problems()
    rules = parse_tag_routes(
        [
            {"tag": "batch", "to": "cheap", "models": ["gpt-4o*"]},
            {"tag": "eval", "to": "capability:fast"},
            {"tag": "bad tag", "to": "x"},
            {"to": "x"},
            "nonsense",
        ],
        FieldReader("f", problems),
    )
    assert rules == (
        TagRoute("batch", "cheap", ("gpt-4o*",)),
        TagRoute("eval", "capability:fast"),
        TagRoute("bad tag", "x"),  # its spelling is the loader's check (below)
    )
    assert [p.path for p in problems.errors] == ["tag_routes[3].tag", "tag_routes[4]"]
    assert parse_tag_routes({"tag": "x"}, FieldReader("f", problems)) == ()
    assert problems.errors[-1].path == "tag_routes"


def test_a_tag_no_request_could_carry_is_a_load_error_with_its_key_path() -> None:
    loaded = load(
        {
            "providers": {"up": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}},
            "tag_routes": [{"tag": "batch", "to": "m"}, {"tag": "bad tag", "to": "m"}],
        }
    )
    assert [(p.file, p.path) for p in loaded.problems.errors] == [("<dict>", "tag_routes[1].tag")]
    assert "invalid tag 'bad tag'" in loaded.problems.errors[0].message


def test_the_first_matching_rule_wins_and_untagged_requests_skip_them() -> None:
    rules = (TagRoute("batch", "cheap", ("gpt-4o*",)), TagRoute("batch", "cheapest"), TagRoute("eval", "judge"))
    assert tag_target(rules, ("batch",), "gpt-4o-mini") == rules[0]
    assert tag_target(rules, ("x", "batch"), "llama3") == rules[1]
    assert tag_target(rules, ("eval",), "gpt-4o") == rules[2]
    assert tag_target(rules, (), "gpt-4o") is None
    assert tag_target(rules, ("other",), "gpt-4o") is None
