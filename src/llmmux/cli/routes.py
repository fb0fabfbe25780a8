"""`llmmux models` and `llmmux route`: what is routable, and where a request would go.

`models` is also the group for model management subcommands (see `ollama_models`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from ..errors import InvalidRequest
from ..router import Router
from ..routing.tokens import CHARS_PER_TOKEN, MESSAGE_OVERHEAD, REPLY_PRIMING
from ..types import ChatRequest, Message
from .common import config_option, config_or_exit


def _router(config_path: Path | None) -> Router:
    return Router(config_or_exit(config_path))


@click.group(invoke_without_command=True)
@config_option
@click.option("--live", is_flag=True, help="Ask every provider for its models and flag mismatches with the config.")
@click.pass_context
def models(ctx: click.Context, config_path: Path | None, live: bool) -> None:
    """List every routable model name and where each goes; `pull` and `rm` manage an Ollama's models."""
    ctx.ensure_object(dict)["config_path"] = config_path
    if ctx.invoked_subcommand is None:
        if live:
            sys.exit(asyncio.run(_list_live(_router(config_path))))
        _list_models(config_path)


def _list_models(config_path: Path | None) -> None:
    router = _router(config_path)
    rows = [
        (name, route.candidates)
        for name, route in router.table.routes().items()
        if route.source != "provider/model name"
    ]
    width = max((len(name) for name, _ in rows), default=10)
    for name, candidates in rows:
        chain = " -> ".join(str(c) for c in candidates)
        click.echo(f"{name:<{width}}  {chain}")
    for name, reason in router.skipped.items():
        click.echo(f"(provider {name} not routed: {reason})", err=True)


def sample_request(
    model: str,
    *,
    capability: str | None,
    hint: str | None,
    provider: str | None,
    prompt_tokens: int | None,
    max_tokens: int | None,
    stream: bool,
) -> ChatRequest:
    """A request standing in for a real one: a user message of about `prompt_tokens` tokens."""
    text = "hello"
    if prompt_tokens is not None:
        chars = max(0, prompt_tokens - MESSAGE_OVERHEAD - REPLY_PRIMING) * CHARS_PER_TOKEN
        text = ("lorem ipsum " * (chars // 12 + 1))[:chars]
    return ChatRequest(
        model=model,
        messages=[Message(role="user", content=text)],
        stream=stream,
        max_tokens=max_tokens,
        capability=capability,
        provider_hint=hint,
        provider=provider,
    )


async def _list_live(router: Router) -> int:
    """Configured and discovered models side by side; exit 1 when a configured model is missing."""
    async with router:
        names = list(router.providers)
        found = await asyncio.gather(*(router.providers[n].list_models() for n in names), return_exceptions=True)
    missing = 0
    for name, listing in zip(names, found, strict=True):
        configured = set(router.config.providers[name].model_names())
        if isinstance(listing, BaseException):
            reason = getattr(listing, "message", None) or str(listing) or type(listing).__name__
            click.echo(f"{name}: unreachable ({reason}); configured: {', '.join(sorted(configured)) or 'none'}")
            continue
        live = {m.id: m for m in listing}
        for model in sorted(configured | set(live)):
            if model in configured and model not in live:
                flag, missing = "MISSING on the backend", missing + 1
            elif model not in configured:
                flag = "discovered, not in the config"
            else:
                flag = "ok"
            context = live[model].context_length if model in live else None
            click.echo(f"{name}/{model}  {flag}" + (f"  context={context}" if context else ""))
    return 1 if missing else 0


@click.command()
@config_option
@click.argument("model")
@click.option("--capability", help="Ask for a capability (like the x-llmmux-capability header).")
@click.option("--hint", help="A provider_hint: local_preferred, cloud_preferred, best_quality, cheapest.")
@click.option("--provider", help="Pin the request to one provider.")
@click.option("--prompt-tokens", type=click.IntRange(min=1), help="Size of the prompt, for context and cost.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="The request's max_tokens.")
@click.option("--stream", is_flag=True, help="Plan a streaming request (latency by time to first token).")
@click.option("--probe", is_flag=True, help="Probe every provider first, so health is live.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def route(
    config_path: Path | None,
    model: str,
    capability: str | None,
    hint: str | None,
    provider: str | None,
    prompt_tokens: int | None,
    max_tokens: int | None,
    stream: bool,
    probe: bool,
    as_json: bool,
) -> None:
    """Explain where a request for MODEL would go: each routing step and the final order."""
    router = _router(config_path)
    request = sample_request(
        model,
        capability=capability,
        hint=hint,
        provider=provider,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
    )
    if probe:
        asyncio.run(_probe(router))
    try:
        explanation = router.explain(request)
    except InvalidRequest as exc:
        click.echo(exc.message, err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(explanation.to_dict(), indent=2))
        return
    for line in explanation.lines():
        click.echo(line)
    found = explanation.route
    if found.retry_attempts:
        click.echo(f"retries: {found.retry_attempts} per candidate, starting at {found.retry_delay_ms} ms")


async def _probe(router: Router) -> None:
    async with router:
        await router.check_health()
