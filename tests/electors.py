"""A leader elector the test switches by hand, for the scheduling loop's unit tests."""

from __future__ import annotations

import asyncio

from hybrid_operator.leader import LeaderElector


class SwitchedElector(LeaderElector):
    """Leads while ``leading`` is true; each :meth:`win` starts a new term (a higher
    epoch), so a binding decided in an earlier term may no longer go out."""

    def __init__(self, leading: bool = True) -> None:
        # No Lease and no API client: nothing here talks to a server.
        self.leading = leading
        self._epochs = 1

    def may_act(self, epoch: int | None = None) -> bool:
        return self.leading and (epoch is None or epoch == self._epochs)

    def lose(self) -> None:
        self.leading = False

    def win(self) -> None:
        self.leading = True
        self._epochs += 1

    async def run_forever(self, stop: asyncio.Event) -> None:
        await stop.wait()
