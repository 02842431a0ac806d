"""SIGTERM stops the lab commands that start things as Ctrl-C does: their clean-up runs."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hybrid_lab.commands.stopping import stops_on_sigterm
from hybrid_operator.cli import build_parser


def test_sigterm_runs_the_clean_up_and_leaves_the_signal_as_it_was() -> None:
    cleaned: list[str] = []
    before = signal.getsignal(signal.SIGTERM)

    @stops_on_sigterm
    def command() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5.0)  # the signal interrupts this
            return 0
        finally:
            cleaned.append("dev cluster stopped")

    with pytest.raises(KeyboardInterrupt):
        command()
    assert cleaned == ["dev cluster stopped"]
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("command", ["demo", "cluster-bench", "faults"])
def test_the_commands_that_start_a_dev_cluster_stop_it_on_sigterm(command: str) -> None:
    handler = build_parser().parse_args([command]).handler
    assert getattr(handler, "stops_on_sigterm", False)
