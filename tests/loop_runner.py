"""The scheduling loop run for a while in a unit test, beside a lister that answers every
hold for a listing with a fixed one (what the reconciling listings do in the operator)."""

from __future__ import annotations

import asyncio

from hybrid_operator.k8s.calls import Listing
from hybrid_operator.scheduler import Scheduler


def run_with_listings(scheduler: Scheduler, seconds: float, listing: Listing) -> list[float]:
    """Run the loop for ``seconds``; whenever it holds passes for a listing, ``listing`` is
    what the cluster lists. Returns when each listing began (the cache's ticks)."""
    listed: list[float] = []

    async def lister(stop: asyncio.Event) -> None:
        while not stop.is_set():
            if scheduler.relisted.is_set():
                listed.append(scheduler.cache.ticks())
                scheduler.reconcile(listing, listed[-1])
                scheduler.reconciled(listed[-1])
            await asyncio.sleep(0.01)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await asyncio.gather(scheduler.run_forever(stop), lister(stop))

    asyncio.run(main())
    return listed
