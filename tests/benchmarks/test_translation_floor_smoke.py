"""CI proves the translation floor's three loops run on the recorded stream (in process:
under valgrind they are the by-hand count)."""

from __future__ import annotations

import pytest

from tests.benchmarks.translation_floor import MODES, RECORDED, events, run


def test_the_recorded_stream_is_a_text_stream() -> None:
    names = [name for name, _ in events(RECORDED)]
    assert names[0] == b"message_start" and names[-1] == b"message_stop"
    assert names.count(b"content_block_delta") >= 5


@pytest.mark.parametrize("mode", MODES)
def test_each_loop_runs(mode: str) -> None:
    run(mode, 2, RECORDED)
