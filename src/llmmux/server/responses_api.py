"""The OpenAI Responses surface: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`.

Responses clients (the `openai` SDK's `client.responses`, Codex) run on any chat backend:
text, reasoning, function, custom and namespaced tool calls and their results, streaming with
the Responses events. An OpenAI backend with `responses: native` gets the body as sent and
answers with its own bytes (hosted tools included); others get it translated to chat.
Responses are stored unless the request says `"store": false` (OpenAI's default), so
`previous_response_id` continues a conversation without resending it. A client that leaves
a whole answer of local models stops it, as at every door (`streaming.unless_left`);
`background` responses, which outlive their client, are refused.
"""

from __future__ import annotations

import msgspec

from ..errors import InvalidRequest, ResponseNotFound
from ..events import ClientApi
from ..router import Router
from ..routing import ChatStream
from ..types import Message
from ..wire import responses as wire
from .http import JSON_HEADERS, SSE_HEADERS, Request, Send, header_list, send_bytes
from .responses_store import ResponseStore, StoredResponse
from .streaming import routing_headers, runs_locally, send_stream, unless_left


class ResponsesDoor:
    """The Responses endpoints of one app, with that app's store of responses.

    >>> door = ResponsesDoor(ResponseStore())     # doctest: +SKIP
    >>> table.add("/v1/responses", {"POST": door.create}, OPENAI_DOOR)
    """

    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    async def create(self, router: Router, request: Request, send: Send) -> None:
        ask = wire.decode_request(await request.json())
        history = await self._history(request, ask.previous_response_id)
        chat = wire.chat_request(ask, history)
        context = request.context(ClientApi.RESPONSES)
        if not ask.stream:
            # `background` is refused by `decode_request`: nothing here is meant to outlive its client.
            done = await unless_left(
                request, router.chat(chat, context=context), lambda: runs_locally(router, chat, context)
            )
            if done is None:
                return  # the client left a local model's answer: recorded (499), nothing stored
            # From here on nothing is cancelled, so a response is stored whole or not at all.
            body, output, data = wire.encode_response(wire.ResponseShell(ask, done.public), done.response)
            await self._keep(request, ask, body, [*history, *ask.input, output])
            headers = header_list(JSON_HEADERS, routing_headers(done, request.request_id))
            await send_bytes(send, 200, data, headers)
            return
        stream = await router.open_stream(chat, context=context)
        encoder = wire.StreamEncoder(wire.ResponseShell(ask, stream.public))
        await _send_events(stream, encoder, request, send)
        if encoder.final is not None:
            await self._keep(request, ask, encoder.final, [*history, *ask.input, encoder.message()])

    async def retrieve(self, router: Router, request: Request, send: Send) -> None:
        response_id = _response_id(request)
        found = await self.store.fetch(response_id, request.key_id, any_owner=request.admin)
        if found is None:
            raise _not_found(response_id)
        await send_bytes(send, 200, msgspec.json.encode(found.body), JSON_HEADERS)

    async def delete(self, router: Router, request: Request, send: Send) -> None:
        response_id = _response_id(request)
        if not await self.store.remove(response_id, request.key_id, any_owner=request.admin):
            raise _not_found(response_id)
        body = {"id": response_id, "object": "response", "deleted": True}
        await send_bytes(send, 200, msgspec.json.encode(body), JSON_HEADERS)

    async def _history(self, request: Request, previous: str | None) -> list[Message]:
        if previous is None:
            return []
        found = await self.store.fetch(previous, request.key_id, any_owner=request.admin)
        if found is None:
            raise InvalidRequest(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return found.history

    async def _keep(
        self, request: Request, ask: wire.ResponsesRequest, body: dict[str, object], history: list[Message]
    ) -> None:
        if ask.store:
            await self.store.save(StoredResponse(str(body["id"]), body, history, owner=request.key_id))


async def _send_events(stream: ChatStream, encoder: wire.StreamEncoder, request: Request, send: Send) -> None:
    await send_stream(
        stream,
        request,
        send,
        SSE_HEADERS,
        encode=encoder.encode,
        finish=encoder.finish,
        fail=encoder.fail,
    )


def _response_id(request: Request) -> str:
    response_id = request.params["id"]
    if "/" in response_id:
        # e.g. /input_items or /cancel: OpenAI's, for what llmmux does not keep or run.
        raise ResponseNotFound(f"llmmux does not serve {request.path}; it keeps responses, not their input items.")
    return response_id


def _not_found(response_id: str) -> ResponseNotFound:
    return ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
