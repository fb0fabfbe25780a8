"""config/ sits at the bottom: loading and checking a config pulls in no other llmmux module.

Domains (providers, routing, pricing, local models) read the config; if config/ imported
them back, every domain would load with it and import cycles would follow. Checks that need
a domain's knowledge live with the domain, and `llmmux.loading` runs them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import llmmux

ALLOWED_OUTSIDE = {"llmmux", "llmmux.types", "llmmux.errors"}

# The package's own __init__ imports the whole library, so the probe stands in an empty
# `llmmux` package (same folder) and then imports every module of config/.
PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, types
    root = sys.argv[1]
    package = types.ModuleType("llmmux")
    package.__path__ = [root]
    sys.modules["llmmux"] = package
    import llmmux.config
    for info in pkgutil.walk_packages(llmmux.config.__path__, "llmmux.config."):
        importlib.import_module(info.name)
    config, problems = llmmux.config.load_config(sys.argv[2])
    print(json.dumps(sorted(name for name in sys.modules if name.startswith("llmmux"))))
    """
)


def test_config_imports_nothing_above_it(tmp_path: Path) -> None:
    file = tmp_path / "llmmux.yaml"
    file.write_text(
        "providers:\n  local:\n    type: ollama\n    models: [llama3.1]\nstate: {url: redis://127.0.0.1:6379/0}\n"
    )
    root = str(Path(llmmux.__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, root, str(file)], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout)
    assert "llmmux.config.loader" in loaded  # the probe did import config/
    outside = [name for name in loaded if not name.startswith("llmmux.config") and name not in ALLOWED_OUTSIDE]
    assert outside == []


def test_only_config_env_reads_the_environment() -> None:
    # One place reads os.environ, so every setting's source is explicit and tests pass a mapping.
    root = Path(llmmux.__file__).parent
    readers = []
    for file in sorted(root.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(f"{file.relative_to(root)}:{node.lineno}")
    assert readers and all(r.startswith("config/env.py:") for r in readers), readers
