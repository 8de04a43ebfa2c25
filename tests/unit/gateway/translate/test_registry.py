"""The pairs' table: each entry's module makes exactly that pair, every translator a
module makes is in the table, and a module is imported only when its pair is needed."""

from __future__ import annotations

import importlib
import subprocess
import sys

from gateway.core.operations import Operation
from gateway.translate import MODULES, PREFERENCE, plan, translator


def test_each_entry_names_the_module_that_makes_its_pair() -> None:
    for (client, backend), name in MODULES.items():
        found = translator(client, backend)
        assert found is not None and (found.client, found.backend) == (client, backend)
        module = importlib.import_module(f"gateway.translate.{name}")
        made = getattr(module, "TRANSLATORS", None) or (module.TRANSLATOR,)
        assert {(t.client, t.backend) for t in made} <= set(MODULES), name
    assert translator(Operation.EMBEDDINGS, Operation.CHAT) is None
    for client, backends in PREFERENCE.items():
        assert all((client, b) in MODULES for b in backends), client


def test_a_native_plan_and_a_way_import_no_translator() -> None:
    script = (
        "import sys\n"
        "from gateway.core.operations import Operation as O\n"
        "from gateway.translate import plan, way\n"
        "assert plan(O.CHAT, {O.CHAT, O.RESPONSES}) == (O.CHAT, None)\n"
        "assert way(O.CHAT, {O.MESSAGES}) is O.MESSAGES and way(O.CHAT, {O.EMBEDDINGS}) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('gateway.translate.')))\n"
        "route = plan(O.CHAT, {O.MESSAGES})\n"
        "print(route[0].name, type(route[1]).__module__)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "['gateway.translate.base']"
    assert out[1] == "MESSAGES gateway.translate.chat_messages"
    assert plan(Operation.CHAT, {Operation.MESSAGES}) == (
        Operation.MESSAGES, translator(Operation.CHAT, Operation.MESSAGES))
