"""Where llmmux looks for its config, and keeps its files when no config says.

A config's ledger lives beside the config. With no config (`llmmux serve` on the
embedded default), the ledger and any other state go to the platform's data directory,
never the current one, so running llmmux from a project folder leaves it clean:

    $LLMMUX_DATA_DIR, else
    $XDG_DATA_HOME/llmmux (default ~/.local/share/llmmux) on Linux and the BSDs,
    ~/Library/Application Support/llmmux on macOS,
    %LOCALAPPDATA%\\llmmux on Windows.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from .env import lookup

APP_NAME = "llmmux"
DATA_DIR_ENV = "LLMMUX_DATA_DIR"
CONFIG_ENV = "LLMMUX_CONFIG"
STATE_DIR_ENV = "LLMMUX_STATE_DIR"
DEFAULT_LOCATIONS = ("llmmux.yaml", "config")


def data_dir(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> Path:
    """The folder for llmmux's own state when no config names one (not created here)."""
    explicit = lookup(DATA_DIR_ENV, env)
    if explicit:
        return Path(explicit).expanduser()
    home = Path(lookup("HOME", env) or Path.home())
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    if platform == "win32":
        local = lookup("LOCALAPPDATA", env)
        return (Path(local) if local else home / "AppData" / "Local") / APP_NAME
    xdg = lookup("XDG_DATA_HOME", env)
    return (Path(xdg) if xdg else home / ".local" / "share") / APP_NAME


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where managed servers' logs go: $LLMMUX_STATE_DIR, else $XDG_STATE_HOME/llmmux (~/.local/state)."""
    explicit = lookup(STATE_DIR_ENV, env)
    if explicit:
        return Path(explicit)
    base = lookup("XDG_STATE_HOME", env)
    return (Path(base) if base else Path("~/.local/state").expanduser()) / APP_NAME


def find_config(env: Mapping[str, str] | None = None) -> Path | None:
    """The config to use when none is named: `$LLMMUX_CONFIG`, else ./llmmux.yaml or ./config."""
    named = lookup(CONFIG_ENV, env)
    if named:
        return Path(named)
    return next((Path(p) for p in DEFAULT_LOCATIONS if Path(p).exists()), None)
