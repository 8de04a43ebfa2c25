"""The benchmark's translation scenarios (part of `python -m tests.benchmarks.bench`): the
same 20-token stream relayed natively and through a translation, on the plain gateway,
interleaved in one run, so that what translation adds is read off side by side:

- a Chat Completions stream on a deployment whose backend speaks Chat Completions
  (native) and on one whose backend speaks only Anthropic Messages (chat -> Messages);
- a Responses stream on a deployment whose backend speaks Responses (native) and on one
  whose backend speaks only Chat Completions (Responses -> chat).

Reported per pair: the added time to first byte of the translated stream over the native
one, and the gateway's CPU per request of each. The target (issue #22): translation costs
at most 15 % more CPU per request than the native relay of the same stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIMEOUTS = {"response": 300, "idle": 300}
CPU_GOAL = 1.15  # translated CPU per request at most this times the native one


def deployments(sim_port: int) -> list[dict[str, Any]]:
    """What the gateway's config adds for these scenarios: a chat-only backend (Responses
    reaches it translated); the Anthropic deployment `bench-claude` is already there."""
    return [{"name": "bench-chat-only", "model": "bench-model", "backends": [
        {"url": f"http://127.0.0.1:{sim_port}/v1", "api": "openai", "apis": ["chat/completions"],
         "timeouts": TIMEOUTS}]}]


@dataclass(frozen=True)
class Case:
    scenario: str
    path: str
    body: dict[str, object]
    end: bytes


def _chat(model: str) -> dict[str, object]:
    return {"model": model, "stream": True, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello there"}]}


def _responses(model: str, store: bool = False) -> dict[str, object]:
    # Not stored: what is measured is the relay and the translation, not the database
    # write of the owner record (native) or of the whole response (translated: the
    # gateway stores what a chat backend cannot), which the stored pair below shows.
    return {"model": model, "stream": True, "input": "Hello there", "store": store}


# (native, translated): the same client API and the same stream; the backend's API differs.
PAIRS = (
    (Case("translation: chat stream, native", "/v1/chat/completions", _chat("bench"), b"[DONE]"),
     Case("translation: chat stream, chat -> Messages", "/v1/chat/completions",
          _chat("bench-claude"), b"[DONE]")),
    (Case("translation: responses stream, native", "/v1/responses", _responses("bench"),
          b"response.completed"),
     Case("translation: responses stream, Responses -> chat", "/v1/responses",
          _responses("bench-chat-only"), b"response.completed")),
    (Case("translation: responses stream stored, native", "/v1/responses",
          _responses("bench", store=True), b"response.completed"),
     Case("translation: responses stream stored, Responses -> chat", "/v1/responses",
          _responses("bench-chat-only", store=True), b"response.completed")),
)

# The streams by a short name, for the instruction counter and the profiler (--case).
NAMES = (("chat-native", "chat-messages"), ("responses-native", "responses-chat"),
         ("responses-native-stored", "responses-chat-stored"))
CASES = {name: case for pair, names in zip(PAIRS, NAMES, strict=True)
         for name, case in zip(names, pair, strict=True)}


def rows(measure: Callable[[Case, int], Any], rounds: int, concurrencies: tuple[int, ...],
         median: Callable[[list[Any]], Any], compare: Callable[[Any, Any], None]) -> list[Any]:
    """Each pair at each concurrency, native and translated alternating `rounds` times;
    the median of each figure; the translated row compared with its native one, its note
    saying its CPU per request as a multiple of the native's."""
    out: list[Any] = []
    for native, translated in PAIRS:
        for concurrency in concurrencies:
            runs: dict[str, list[Any]] = {native.scenario: [], translated.scenario: []}
            for _ in range(rounds):
                for case in (native, translated):
                    runs[case.scenario].append(measure(case, concurrency))
            a, b = median(runs[native.scenario]), median(runs[translated.scenario])
            compare(b, a)
            ratio = cpu_ratio(b, a)
            if ratio is not None:
                b.note = ", ".join(filter(None, [b.note, f"CPU/request {ratio:.2f}x native"]))
            out += [a, b]
    return out


def cpu_ratio(translated: Any, native: Any) -> float | None:
    a, b = native.gateway_cpu_us_per_request, translated.gateway_cpu_us_per_request
    return b / a if a and b else None


def ratios(all_rows: list[Any]) -> list[tuple[str, int, float | None]]:
    """(translation, concurrency, its CPU per request over the native's) for each pair
    this run measured."""
    found: list[tuple[str, int, float | None]] = []
    for native, translated in PAIRS:
        for r in all_rows:
            if r.scenario != translated.scenario:
                continue
            base = next((n for n in all_rows if n.scenario == native.scenario
                         and n.concurrency == r.concurrency and n.target == r.target), None)
            found.append((translated.scenario.removeprefix("translation: "), r.concurrency,
                          cpu_ratio(r, base) if base else None))
    return found
