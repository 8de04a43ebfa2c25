"""Overrides of the config from the environment: `MODEL_GATEWAY_SERVER__PORT=9000` sets
`server.port`, whatever the file says. The prefix and `__` for each level are the
contract's (§3); names are case-insensitive; a value that starts with `[` or `{` is read
as JSON (a list or a mapping: `MODEL_GATEWAY_SERVER__FORWARD_REQUEST_HEADERS='["x-a"]'`,
keys inside it spelt as in the file), and so is `null` (an optional block cleared); any
other as the text it is, which the config's model converts (`9000`, `true`).

Only names that start with one of the config's own top-level keys count: the process's
other variables (`MODEL_GATEWAY_CONFIG`, `MODEL_GATEWAY_LOG_LEVEL`, a client's
`MODEL_GATEWAY_KEY`) are not config keys and are left alone.

A few lines instead of pydantic-settings, which imports a source for every cloud's
secret store and a command-line parser: 5 MB to import, about 1.3 MB of what a sidecar
process keeps (docs/benchmark.md, 2026-12-07 night)."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from typing import Any

PREFIX = "model_gateway_"
NESTING = "__"


def _value(text: str) -> Any:
    bare = text.strip()
    if bare[:1] in ("[", "{") or bare == "null":  # null: an optional block cleared
        try:
            return json.loads(bare)
        except ValueError:
            return text  # the model says what is wrong with it, under its key
    return text


def overrides(keys: Collection[str], nested: Collection[str] = (),
              environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The nested mapping that the environment's `MODEL_GATEWAY_<KEY>[__<KEY>...]`
    variables make, for top-level `keys` only, and with `__` below those of `nested`
    (the keys that hold mappings: below a scalar a name means nothing and is left alone)."""
    out: dict[str, Any] = {}
    given = (environ if environ is not None else os.environ).items()
    # By the lower-cased name: a mapping's JSON (`X`) comes before its keys (`X__Y`).
    for lower, text in sorted((name.lower(), text) for name, text in given):
        if not lower.startswith(PREFIX):
            continue
        path = lower[len(PREFIX):].split(NESTING)
        if path[0] not in keys or not all(path) or (len(path) > 1 and path[0] not in nested):
            continue
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):  # `X=text` and `X__Y=...` both set: X__Y wins
                child = node[part] = {}
            node = child
        node[path[-1]] = _value(text)
    return out


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on it, mapping into mapping; anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A process setting, `MODEL_GATEWAY_<NAME>` in any case: None when unset or empty."""
    wanted = PREFIX + name.lower()
    for key, text in (environ if environ is not None else os.environ).items():
        if key.lower() == wanted and text:
            return text
    return None
