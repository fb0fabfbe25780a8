"""A stored Responses API response belongs to the key that created it; the admin sees every one."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from security.served import Served
from upstreams import FakeOpenAI

MASTER = "sk-master-RESPONSES-0123456789abcdef"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "health_checks": {"enabled": False},
            "providers": {"main": {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]}},
        }
        with Served(tmp_path_factory.mktemp("responses"), config, MASTER) as served:
            yield served


def client(gw: Served, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_another_key_cannot_read_continue_or_delete_a_stored_response(gw: Served) -> None:
    owner_key, other_key = gw.key("owner"), gw.key("other")
    with client(gw, owner_key) as owner, client(gw, other_key) as other:
        made = owner.responses.create(model="m1", input="remember 42")
        with pytest.raises(openai.NotFoundError) as hidden:
            other.responses.retrieve(made.id)
        unknown = gw.get("/v1/responses/resp_never_made", other_key).json()
        assert hidden.value.body == {
            **unknown["error"],
            "message": f"Response with id '{made.id}' not found.",
        }  # exactly as for an id that never existed
        with pytest.raises(openai.BadRequestError, match="previous_response_not_found|not found"):
            other.responses.create(model="m1", input="and then?", previous_response_id=made.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(made.id)
        assert owner.responses.retrieve(made.id).id == made.id  # still there for its owner
        assert owner.responses.create(model="m1", input="and then?", previous_response_id=made.id).output_text
    with client(gw, MASTER) as admin:
        assert admin.responses.retrieve(made.id).id == made.id  # the admin sees every key's responses
        admin.responses.delete(made.id)
    with client(gw, owner_key) as owner, pytest.raises(openai.NotFoundError):
        owner.responses.retrieve(made.id)
