"""docs/architecture.md stays true to the code: every module, package and file it names
exists, every module its room map lists is in that package, and every package there is
in the map."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _room_map() -> dict[str, list[str]]:
    block = DOC[DOC.index("```\npolicies/"):]
    block = block[4:block.index("```", 4)]
    rooms: dict[str, list[str]] = {}
    current = ""
    for line in block.splitlines():
        head, _, rest = line.partition(" ")
        if head.endswith("/"):
            current = head
            rooms[current] = []
        else:
            rest = line
        if current.startswith("gateway"):
            rooms[current] += [n.strip() for n in rest.split(",") if n.strip()]
    return rooms


def test_the_room_map_lists_exactly_the_modules_there_are() -> None:
    for room, names in _room_map().items():
        if not room.startswith("gateway"):
            continue
        folder = ROOT / room
        assert folder.is_dir(), f"{room} is not a package"
        for name in names:
            assert (folder / f"{name}.py").exists() or (folder / name).is_dir(), f"{room}{name}"
        if room != "gateway/":
            there = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
            there |= {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                      and p.name != "migrations"}
            assert there <= set(names), f"{room} has modules the map leaves out: {there - set(names)}"
    packages = {p.parent.relative_to(ROOT).as_posix() + "/" for p in ROOT.glob("gateway/*/__init__.py")}
    assert packages <= set(_room_map()), f"packages missing from the map: {packages - set(_room_map())}"


def test_every_path_named_exists() -> None:
    paths = set(re.findall(r"\b((?:gateway|policies|tests|docs|deploy|helm)/[\w./-]+)", DOC))
    missing = [p for p in paths if not (ROOT / p.rstrip(".")).exists()]
    assert not missing, missing


def test_every_short_module_path_exists() -> None:
    # `upstream/client.py`, `apis/base.py`: relative to gateway/ (or policies/).
    short = set(re.findall(r"`([a-z_]+/[a-z_]+\.py)`", DOC))
    missing = [p for p in short if not (ROOT / "gateway" / p).exists()
               and not (ROOT / "policies" / p).exists() and not (ROOT / p).exists()]
    assert not missing, missing


def test_every_dotted_name_resolves() -> None:
    # `upstream/exchange.exchange`, `core.flow.Flow`, `policies.wire.WireApi`,
    # `http/admission.admitted`: a module, then what it defines.
    rooms = {p.parent.name for p in ROOT.glob("gateway/*/__init__.py")}
    rooms |= {p.stem for p in ROOT.glob("gateway/*.py")} | {"gateway", "policies"}
    names = set(re.findall(r"`((?:[a-z_]+[./])+[A-Za-z_]+)`", DOC))
    unresolved = []
    for name in names:
        if name.endswith(".py") or re.split(r"[./]", name)[0] not in rooms:
            continue  # a config key, an attribute (flow.usage), another library's name
        parts = name.replace("/", ".").split(".")
        for prefix in ("gateway.", "", "gateway.http.", "gateway.upstream."):
            if _resolves(prefix, parts):
                break
        else:
            unresolved.append(name)
    assert not unresolved, unresolved


def _resolves(prefix: str, parts: list[str]) -> bool:
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(prefix + ".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False
