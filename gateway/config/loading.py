"""Reading a config file: YAML to `GatewayConfig`, every problem named by file, line
and key; and the errors of a config that cannot be used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.models import GatewayConfig
from gateway.core.settings import ProcessSettings


class ConfigError(Exception):
    """A config file that cannot be used; the message names file, line and key."""


class StartupError(Exception):
    """The gateway cannot run with this config (a missing secret, say)."""


def _loc_text(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at `loc`, or of its nearest ancestor."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _discriminated(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic puts the union tag ("api-key", "entra") into the path; it is not a key.
    tags = ("api-key", "entra", "none", "function-after", "blocklist", "pii", "hook",
            "azure-content-safety")
    return tuple(p for p in loc if p not in tags)


def parse(text: str, source: str = "<config>") -> GatewayConfig:
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (server, deployments, ...)")
    try:
        return GatewayConfig(**data)
    except ValidationError as exc:
        lines = []
        errors = exc.errors()
        for err in errors:
            loc = _discriminated(tuple(err["loc"]))
            if err["type"] == "too_short" and any(
                tuple(e["loc"])[: len(err["loc"])] == tuple(err["loc"]) and e is not err
                for e in errors
            ):
                continue  # pydantic's echo of an item that failed: not a second problem
            line = _line_of(tree, loc)
            where = f"{source}:{line}" if line else source
            key = _loc_text(loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (not part of the config format)"
            lines.append(f"{where}: {key}: {msg}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None


def load(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    return parse(text, str(path))


def dump_public(config: GatewayConfig) -> dict[str, Any]:
    """The config as plain data, safe to print (it holds digests and secret *names* only)."""
    return config.model_dump(mode="json")


def config_path(path: Path | None) -> Path:
    """The config file a verb runs with: --config, or MODEL_GATEWAY_CONFIG."""
    path = path or ProcessSettings().config
    if path is None:
        raise ConfigError("no config: pass --config FILE or set MODEL_GATEWAY_CONFIG")
    return path


def load_config(path: Path | None) -> GatewayConfig:
    """The config a verb runs with: --config, or MODEL_GATEWAY_CONFIG."""
    return load(config_path(path))
