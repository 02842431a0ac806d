"""Settings changed from the command line: comma-separated ``KEY=VALUE`` pairs, as
``simulate --reservation`` and ``--preemption`` take them."""

from __future__ import annotations

from collections.abc import Sequence


def key_values(text: str, known: Sequence[str]) -> dict[str, str]:
    """The pairs of ``text`` by key; a ValueError names a part that is not ``KEY=VALUE``
    with a key among ``known``."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, raw = part.partition("=")
        if not sep or key.strip() not in known:
            raise ValueError(f"{part!r}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        out[key.strip()] = raw.strip()
    return out
