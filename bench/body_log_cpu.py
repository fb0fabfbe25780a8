"""CPU a body costs the body log, part by part, in one process: the gateway's load left out.

Builds bodies shaped like `body_logging.py`'s (a distinct ~1 KB prompt, the fake upstream's
reply, one in four a stream's text, the client's headers with a bearer key), hands them to a
real `BodyLog` on a fresh SQLite ledger tick by tick, then indexes them all and enforces
retention, and prints CPU µs per body (`time.process_time`: every thread of the process) for
queueing + redacting + INSERT (and of that, the body log's own thread: redacting and cutting
into rows), the full-text index, and retention. Run it against an older llmmux with
PYTHONPATH to compare:

    PYTHONPATH=src python bench/body_log_cpu.py                  # 10 ticks of 2,000 bodies
    PYTHONPATH=/tmp/old/src python bench/body_log_cpu.py --ticks 20
    PYTHONPATH=src python bench/body_log_cpu.py --conversation   # an agent's growing conversation

`--conversation`: what an agent (Claude Code, Codex) sends: the same ~4 KB system prompt on
every turn and the whole conversation so far, a ~200-byte user turn and the reply per turn,
`TURNS` turns to a conversation, then a new one. Its µs a body are of bodies of 4 to 11 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import measure
import payloads
from llmmux.config.model import BodyStoreConfig
from llmmux.events import CallContext, RequestRecord
from llmmux.ledger import SQLiteStore
from llmmux.ledger.bodies import ROWS_THREAD, BodyLog
from llmmux.masking import Masker

FILLER = ("the quick brown fox jumps over the lazy dog " * 30)[:1000]
HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer sk-bench-not-a-real-key-0123456789"),
    (b"content-length", b"1100"),
]
REPLY = payloads.CHAT_COMPLETION.replace(payloads.MODEL, "bench-model").encode()


class RawReply:
    raw = REPLY  # an OpenAI-format upstream's bytes, as the gateway keeps them


SYSTEM = ("You are a coding agent. Follow the repository's conventions; run the tests. " * 60)[:4000]
TURNS = 16
USER_TURN = ("please change the function so that it handles the empty case and add a test " * 3)[:200]
ASSISTANT_TURN = ("I changed parse() to return an empty list early and added test_parse_empty " * 3)[:200]


def messages(i: int, conversation: bool) -> str:
    if not conversation:
        return f'{{"role":"system","content":"be brief"}},{{"role":"user","content":"{i} {FILLER}"}}'
    turn = i % TURNS
    said = [f'{{"role":"system","content":"{SYSTEM}"}}']
    for k in range(turn + 1):  # the turns so far, each numbered within its conversation
        said.append(f'{{"role":"user","content":"{i // TURNS} {k} {USER_TURN}"}}')
        if k < turn:
            said.append(f'{{"role":"assistant","content":"{ASSISTANT_TURN}"}}')
    return ",".join(said)


def record(i: int, conversation: bool = False) -> RequestRecord:
    stream = i % 4 == 3
    model = "bench-stream" if stream else "bench-model"
    tail = ',"stream":true' if stream else ""
    context = CallContext(f"{time.time_ns() // 1_000_000:012x}{i:012x}", "openai", headers=list(HEADERS))
    context.body = f'{{"model":"{model}","messages":[{messages(i, conversation)}],"max_tokens":32{tail}}}'.encode()
    done = RequestRecord(context, "chat", stream=stream, provider="p", model="m")
    done.public_model = model
    if stream:
        done.output = [f"tok{k} " for k in range(19)]
    else:
        done.response = RawReply()  # type: ignore[assignment]
    return done


def thread_cpu(name: str) -> float:
    """CPU seconds of this process's threads the OS knows as `name` (the body log names its own)."""
    return sum(seconds for _, thread, seconds in measure.threads(os.getpid()) if thread == name)


async def run(per_tick: int, ticks: int, conversation: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(str(Path(folder) / "ledger.db"))
        await store.open()
        bodies = BodyLog(store, BodyStoreConfig(), Masker(["provider-key-0123456789", "master-key-abcdef"]))
        records = [[record(t * per_tick + i, conversation) for i in range(per_tick)] for t in range(ticks)]
        size = sum(len(r.context.body or b"") for batch in records for r in batch) / (per_tick * ticks)
        start, rows_start = time.process_time(), thread_cpu(ROWS_THREAD)
        for batch in records:
            for r in batch:
                bodies.add(r)
            await bodies.flush()
        stored, rows = time.process_time(), thread_cpu(ROWS_THREAD) - rows_start
        await bodies.index(everything=True)
        indexed = time.process_time()
        await bodies.enforce_retention()
        done = time.process_time()
        await bodies.aclose()
        await store.close()
    n = per_tick * ticks
    print(
        f"CPU us a body: queue, redact and INSERT {(stored - start) / n * 1e6:.1f} "
        f"(redacting and cutting into rows {rows / n * 1e6:.1f}), "
        f"index {(indexed - stored) / n * 1e6:.1f}, retention {(done - indexed) / n * 1e6:.2f}, "
        f"all {(done - start) / n * 1e6:.1f} ({n} bodies, prompts of {size:,.0f} bytes on average)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-tick", type=int, default=2000, help="bodies a flush takes (a second's worth)")
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--conversation", action="store_true", help="an agent's growing conversation (see above)")
    args = parser.parse_args()
    asyncio.run(run(args.per_tick, args.ticks, args.conversation))


if __name__ == "__main__":
    main()
