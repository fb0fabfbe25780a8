"""Every error llmmux reports is one of the documented tree in `errors.py`, drawn in its docstring."""

from __future__ import annotations

import importlib
import pkgutil
import re

import llmmux
from llmmux import errors
from llmmux.errors import LLMMuxError


def _import_everything() -> None:
    """Every module of the package, so every LLMMuxError subclass defined anywhere is known."""
    for module in pkgutil.walk_packages(llmmux.__path__, "llmmux."):
        if module.name.endswith("__main__"):  # runs the CLI on import
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra (MLX, OpenTelemetry) that is not installed
            continue


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_error_class_lives_in_errors_py() -> None:
    _import_everything()
    outside = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in _subclasses(LLMMuxError) if c.__module__ != errors.__name__
    )
    assert outside == []


def test_the_docstring_draws_every_error() -> None:
    tree = errors.__doc__ or ""
    names = {c.__name__ for c in _subclasses(LLMMuxError) if c.__module__ == errors.__name__}
    missing = sorted(n for n in names if not re.search(rf"[├└]── {n}\b", tree))
    assert missing == []


def test_each_drawn_status_is_the_class_status() -> None:
    tree = errors.__doc__ or ""
    for name, status in re.findall(r"[├└]── (\w+)\s+(\d{3}) ", tree):
        cls = getattr(errors, name)
        assert cls.status == int(status), name


def test_method_not_allowed_says_which_methods_the_path_takes() -> None:
    error = errors.MethodNotAllowed("/v1/chat/completions accepts POST only.", ("POST",))
    assert (error.status, error.code, error.headers()) == (405, "method_not_allowed", {"allow": "POST"})
