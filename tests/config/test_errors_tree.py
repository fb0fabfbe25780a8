"""Every error a config can raise is drawn in errors.py's docstring, beside the request errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import llmmux.config
from llmmux import errors

CONFIG_MODULES = [
    *(info.name for info in pkgutil.walk_packages(llmmux.config.__path__, "llmmux.config.")),
    "llmmux.local.catalog",
    "llmmux.loading",
]


def test_every_config_error_class_is_drawn_in_the_error_tree() -> None:
    defined = {
        name
        for module in map(importlib.import_module, CONFIG_MODULES)
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__
    }
    assert defined >= {"ConfigError", "LocalConfigError"}
    drawn = {name for name in defined if f"    {name} " in (errors.__doc__ or "")}
    assert drawn == defined
