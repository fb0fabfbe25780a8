"""An example for every command's `--help`, kept in one table so a new command without one
fails its test (tests/cli/test_help.py) instead of shipping bare."""

from __future__ import annotations

import click

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "llmmux serve                         # the embedded model and what this machine has",
        "llmmux serve --config llmmux.yaml    # your providers and routes",
        "llmmux route chat-main               # where a request for chat-main would go, and why",
    ),
    "serve": (
        "llmmux serve                              # no config: the embedded model and what it finds",
        "llmmux serve --config llmmux.yaml --port 8080",
        "llmmux serve -c ./config --workers 2      # a folder with providers.yaml and model-mappings.yaml",
    ),
    "validate": (
        "llmmux validate --config llmmux.yaml",
        "llmmux validate -c ./config --probe   # also reach every provider",
    ),
    "models": (
        "llmmux models --config llmmux.yaml",
        "llmmux models --live          # ask each backend what it really has",
    ),
    "models pull": ("llmmux models pull llama3.2:1b --provider ollama",),
    "models rm": ("llmmux models rm llama3.2:1b --provider ollama",),
    "route": (
        "llmmux route chat-main",
        "llmmux route gpt-4o --prompt-tokens 12000 --stream --json",
        "llmmux route coder --capability code --hint local_preferred",
    ),
    "keys": ("llmmux keys create --name ci --budget 5 --rpm 60", "llmmux keys list"),
    "keys create": (
        "llmmux keys create --name ci --budget 5 --budget-period monthly --rpm 60",
        "llmmux keys create --name agent --models gpt-4o-mini,smollm2-135m --json",
    ),
    "keys list": ("llmmux keys list", "llmmux keys list --json"),
    "keys revoke": ("llmmux keys revoke ci",),
    "keys update": ("llmmux keys update ci --budget 20 --rpm none", "llmmux keys update ci --team search"),
    "usage": (
        "llmmux usage --since 24h --by key",
        "llmmux usage --since 2026-12-01 --by day --json",
        "llmmux usage --by team --csv",
        "llmmux usage --by user --tag batch",
    ),
    "teams": ("llmmux teams create --name search --budget 500 --rpm 600", "llmmux teams list"),
    "teams create": (
        "llmmux teams create --name search --budget 500 --budget-period monthly --rpm 600",
        "llmmux teams create --name app --end-user-rpm 10 --end-user-budget 2 --tags team:app",
    ),
    "teams list": ("llmmux teams list", "llmmux teams list --json"),
    "teams update": ("llmmux teams update search --budget 800 --block-free",),
    "teams delete": ("llmmux teams delete search",),
    "audit": ("llmmux audit", "llmmux audit -n 200 --json"),
    "health": ("llmmux health --config llmmux.yaml", "llmmux health --url http://127.0.0.1:4000 --json"),
    "providers": ("llmmux providers list", "llmmux providers info openrouter --models"),
    "providers list": ("llmmux providers list --config llmmux.yaml",),
    "providers info": ("llmmux providers info openrouter --models",),
    "ps": ("llmmux ps", "llmmux ps --url http://127.0.0.1:4000 --json"),
    "status": ("llmmux status", "llmmux status --url http://127.0.0.1:4000 --json"),
    "reload": ("llmmux reload", "llmmux reload --all   # every instance sharing state"),
    "logs": ("llmmux logs vllm -n 50", "llmmux logs vllm --follow"),
    "cache": ("llmmux cache stats", "llmmux cache clear --model chat-main"),
    "cache stats": ("llmmux cache stats", "llmmux cache stats --url http://127.0.0.1:4000 --json"),
    "cache clear": ("llmmux cache clear", "llmmux cache clear --model chat-main", "llmmux cache clear --key ci"),
}


def attach_examples(command: click.Command, path: str = "") -> None:
    """Set each command's epilog to its examples, walking the group tree."""
    lines = EXAMPLES.get(path)
    if lines:
        # \b keeps click from rewrapping the lines.
        command.epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach_examples(sub, f"{path} {name}".strip())
