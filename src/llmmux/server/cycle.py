"""uvicorn's request-response cycle with a leaner `send`, and the reply's last bytes sent at once.

At one connection (c=1) a request's latency is the worker's CPU between reading the request
and writing the reply, so what uvicorn does per response counts. Its `send` checks each
response header with two regular expressions and lower-cases every name; here a header name
is checked once per process (the gateway sends the same few names), and the values of a
whole head are checked in one pass over the joined bytes: a CR or LF anywhere but the line
ends, or any other control byte but tab, is refused as uvicorn refuses it.

The reply's last message (`more_body` false) flushes the `CoalescingTransport` there and then
instead of at the end of the loop step, so the bytes leave before the request's task unwinds
and before whatever the loop runs next. The head of a reply with a content length (a whole
answer, an error) is held until its body comes and leaves with it in that one write: no
flush is scheduled for it, so the loop runs no callback after the step. A chunked head (a
stream) goes to the transport at once, as the client may wait for it before the first event.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HEADER_RE, STATUS_LINE, RequestResponseCycle

from .coalesce import CoalescingTransport

# uvicorn's HEADER_VALUE_RE less CR and LF, which are counted instead (they end each line):
# deleting every other byte from a head leaves only these. `bytes.translate` walks a head in
# a tight table loop; the regular expression's charset match cost some 10k instructions a reply.
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)
_MAX_NAMES = 512
_names: dict[bytes, bytes] = {}  # header names already checked -> lower-cased


def _checked_name(name: bytes) -> bytes:
    lowered = _names.get(name)
    if lowered is None:
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        lowered = name.lower()
        if len(_names) < _MAX_NAMES:  # names a client chose (echoed back) cannot grow it without end
            _names[name] = lowered
    return lowered


class ResponseCycle(RequestResponseCycle):
    """One request and its response on a connection whose writes go through a CoalescingTransport."""

    _held_head = b""  # a content-length reply's head, sent with its body (a class default: no __init__ cost)

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start" or self.access_log:
                await super().send(message)  # uvicorn's error, or its access-log line
                return
            self.response_started = True
            self.waiting_for_100_continue = False
            head = self._head(message["status"], message.get("headers", ()))
            if self.chunked_encoding:
                self.transport.write(head)
            else:
                self._held_head = head
        elif self.response_complete or kind != "http.response.body":
            await super().send(message)  # uvicorn's error for a message out of place
        else:
            self._body(message.get("body", b""), message.get("more_body", False))

    def send_whole(self, status: int, headers: Any, body: bytes) -> bool:
        """A whole response (its headers carry its length) written now, without the two ASGI
        messages and awaits: False where the ASGI path must take it (writes paused, a
        response already begun, uvicorn's access log on)."""
        if self.flow.write_paused or self.response_started or self.access_log:
            return False
        if self.disconnected:
            return True  # dropped, as `send` drops it
        self.response_started = True
        self.waiting_for_100_continue = False
        head = self._head(status, headers)
        if self.chunked_encoding:
            self.transport.write(head)
        else:
            self._held_head = head
        self._body(body, False)
        return True

    def _head(self, status: int, headers: Any) -> bytes:
        if self.default_headers:
            headers = [*self.default_headers, *headers]
        content = [STATUS_LINE[status]]
        lines = 2  # the status line and the blank line that ends the head
        closing = False
        for raw, value in headers:
            name = _checked_name(raw)
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
                self.keep_alive = False
                closing = True
            content += (name, b": ", value, b"\r\n")
            lines += 1
        if not self.keep_alive and not closing:
            content.append(b"connection: close\r\n")
            lines += 1
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        content.append(b"\r\n")
        head = b"".join(content)
        if head.count(b"\n") != lines or head.count(b"\r") != lines or head.translate(None, _NOT_CONTROL):
            raise RuntimeError("Invalid HTTP header value.")
        return head

    def _body(self, body: bytes, more_body: bool) -> None:
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            if body:
                data = (
                    b"%x\r\n%b\r\n" % (len(body), body) if more_body else b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
                )
            else:
                data = b"" if more_body else b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        if more_body:
            if self._held_head:
                data, self._held_head = self._held_head + data, b""
            self.transport.write(data)
            return
        if self.expected_content_length != 0:
            raise RuntimeError("Response content shorter than Content-Length")
        if self._held_head:
            data, self._held_head = self._held_head + data, b""
        self.response_complete = True
        self.message_event.set()
        transport = self.transport
        if isinstance(transport, CoalescingTransport):
            transport.write_now(data)  # the reply is whole: out now, not after what the loop runs next
        else:
            transport.write(data)
        if not self.keep_alive:
            transport.close()
        self.on_response()
