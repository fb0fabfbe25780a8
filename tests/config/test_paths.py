"""Where llmmux keeps its files when no config says."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmmux.config.model import DISCOVERED_SOURCE, Config
from llmmux.config.paths import data_dir, state_dir
from llmmux.ledger import ledger_path


def test_linux_uses_xdg_data_home_else_local_share() -> None:
    assert data_dir({"HOME": "/home/u"}, "linux") == Path("/home/u/.local/share/llmmux")
    assert data_dir({"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, "linux") == Path("/data/llmmux")


def test_macos_and_windows_use_their_own_folders() -> None:
    assert data_dir({"HOME": "/Users/u"}, "darwin") == Path("/Users/u/Library/Application Support/llmmux")
    assert data_dir({"HOME": "C:/u", "LOCALAPPDATA": "C:/u/AppData/Local"}, "win32") == Path(
        "C:/u/AppData/Local/llmmux"
    )


def test_llmmux_data_dir_wins() -> None:
    assert data_dir({"HOME": "/home/u", "LLMMUX_DATA_DIR": "/srv/llmmux"}, "linux") == Path("/srv/llmmux")


def test_a_discovered_config_keeps_its_ledger_in_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMMUX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert ledger_path(Config(source=DISCOVERED_SOURCE)) == tmp_path / "data" / "llmmux.db"


def test_a_config_keeps_its_ledger_beside_it(tmp_path: Path) -> None:
    config = tmp_path / "llmmux.yaml"
    config.write_text("providers: {}\n")
    assert ledger_path(Config(source=str(config))) == tmp_path / "llmmux.db"


def test_managed_servers_state_folder_comes_from_the_environment_given() -> None:
    assert state_dir({"LLMMUX_STATE_DIR": "/srv/llmmux"}) == Path("/srv/llmmux")
    assert state_dir({"XDG_STATE_HOME": "/var/state"}) == Path("/var/state/llmmux")
    assert state_dir({}) == Path("~/.local/state/llmmux").expanduser()
