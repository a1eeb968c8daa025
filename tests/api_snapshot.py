"""Build the public-API snapshot that tests/test_public_api.py compares against.

Run ``python tests/api_snapshot.py`` to rewrite tests/fixtures/public_api.json after an
intended, backward-compatible addition (the test refuses removals and renames).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
from pathlib import Path
from typing import Any

import power_loop

SNAPSHOT = Path(__file__).parent / "fixtures" / "public_api.json"


def _params(obj: Any) -> list[dict[str, Any]]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    out = []
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        out.append({"name": p.name, "kind": p.kind.name, "default": default})
    return out


def describe(name: str) -> dict[str, Any]:
    obj = getattr(power_loop, name)
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return {"kind": "enum", "members": {m.name: m.value for m in obj}}
    if isinstance(obj, type):
        info: dict[str, Any] = {"kind": "class", "init": _params(obj)}
        if dataclasses.is_dataclass(obj):
            info["fields"] = [f.name for f in dataclasses.fields(obj)]
        code = getattr(obj, "code", None)
        if isinstance(code, str) and issubclass(obj, Exception):
            info["code"] = code
        methods = {}
        for attr, value in sorted(vars(obj).items()):
            if attr.startswith("_") or not callable(value):
                continue
            methods[attr] = _params(value)
        info["methods"] = methods
        return info
    if callable(obj):
        return {"kind": "function", "params": _params(obj)}
    return {"kind": "value", "type": type(obj).__name__}


def build() -> dict[str, Any]:
    return {name: describe(name) for name in power_loop.STABLE_API}


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
