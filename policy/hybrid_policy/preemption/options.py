"""Preemption settings and costs as ``simulate --preemption`` and ``--preemption-cost``
take them: ``on`` or comma-separated ``KEY=VALUE`` pairs; a ValueError names the bad
key or value."""

from __future__ import annotations

import dataclasses
import math

from hybrid_policy.overrides import key_values
from hybrid_policy.preemption.guard import Guard
from hybrid_policy.preemption.model import PreemptionReason, PreemptionRules
from hybrid_policy.preemption.phase import PreemptionSettings
from hybrid_policy.preemption.queue import WaitEstimate
from hybrid_policy.scenario.model import PreemptionCostSpec

#: Keys of ``--preemption``: the settings' fields and the rules'.
SETTING_KEYS = (
    "reasons",
    "max_plans",
    "restart_s",
    "shorten_margin",
    "shortest_ratio",
    "max_lost_s",
    "wide_gpus",
    "wait",
    "guard",
    "min_runtime_s",
    "max_preemptions",
    "trigger_delay_s",
    "overdue_s",
)
#: Keys of ``--preemption-cost``.
COST_KEYS = ("opt_in", "checkpoint_interval_minutes", "restart_overhead_s")


def _number(key: str, raw: str, whole: bool = False) -> float:
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{key}={raw!r}: not {kind}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{key}={raw!r}: must be a finite number >= 0")
    return value


def settings_help() -> str:
    """The keys ``--preemption`` takes, for a command's help (from the keys themselves)."""
    reasons = "+".join(sorted(r.value for r in PreemptionReason))
    defaults = "+".join(sorted(r.value for r in PreemptionSettings().reasons))
    choices = {
        "wait": "|".join(e.value for e in WaitEstimate),
        "guard": "|".join(g.value for g in Guard) + f"; default {PreemptionSettings().guard}",
    }
    rest = ", ".join(f"{k} ({choices[k]})" if k in choices else k for k in SETTING_KEYS[1:])
    return f"reasons (names joined by +, among {reasons}; default {defaults}), {rest}"


def parse_settings(text: str) -> PreemptionSettings:
    """``on`` (the defaults) or changes to them, e.g. ``reasons=reclaim,max_plans=1``
    (``reasons`` joins names with ``+``: ``reclaim+priority``)."""
    if text.strip() == "on":
        return PreemptionSettings()
    values = key_values(text, SETTING_KEYS)
    settings = PreemptionSettings()
    if "reasons" in values:
        names = [n.strip() for n in values.pop("reasons").split("+") if n.strip()]
        known = {r.value: r for r in PreemptionReason}
        bad = [n for n in names if n not in known]
        if bad or not names:
            raise ValueError(
                f"reasons={'+'.join(names)!r}: expected names among {', '.join(known)}"
            )
        settings = dataclasses.replace(settings, reasons=frozenset(known[n] for n in names))
    if "max_plans" in values:
        plans = int(_number("max_plans", values.pop("max_plans"), whole=True))
        settings = dataclasses.replace(settings, max_plans=plans)
    if "restart_s" in values:
        restart = _number("restart_s", values.pop("restart_s"))
        settings = dataclasses.replace(settings, restart_s=restart)
    if "shortest_ratio" in values:
        ratio = _number("shortest_ratio", values.pop("shortest_ratio"))
        settings = dataclasses.replace(settings, shortest_ratio=ratio)
    if "wide_gpus" in values:
        wide = int(_number("wide_gpus", values.pop("wide_gpus"), whole=True))
        settings = dataclasses.replace(settings, wide_gpus=wide)
    if "max_lost_s" in values:
        lost = _number("max_lost_s", values.pop("max_lost_s"))
        settings = dataclasses.replace(settings, max_lost_s=lost)
    if "wait" in values:
        raw = values.pop("wait")
        estimates = {e.value: e for e in WaitEstimate}
        if raw not in estimates:
            raise ValueError(f"wait={raw!r}: expected one of {', '.join(estimates)}")
        settings = dataclasses.replace(settings, wait=estimates[raw])
    if "guard" in values:
        raw = values.pop("guard")
        guards = {g.value: g for g in Guard}
        if raw not in guards:
            raise ValueError(f"guard={raw!r}: expected one of {', '.join(guards)}")
        settings = dataclasses.replace(settings, guard=guards[raw])
    if "shorten_margin" in values:
        margin = _number("shorten_margin", values.pop("shorten_margin"))
        settings = dataclasses.replace(settings, shorten_margin=margin)
    rules: dict[str, float | int] = {}
    for key, raw in values.items():
        whole = key == "max_preemptions"
        value = _number(key, raw, whole)
        rules[key] = int(value) if whole else value
    if rules:
        settings = dataclasses.replace(
            settings,
            rules=dataclasses.replace(PreemptionRules(), **rules),  # type: ignore[arg-type]
        )
    return settings


def parse_cost(text: str, base: PreemptionCostSpec) -> PreemptionCostSpec:
    """``base`` (the scenario's costs) with ``text``'s changes, e.g.
    ``checkpoint_interval_minutes=5,restart_overhead_s=60`` (``none``: no checkpoints)."""
    values = key_values(text, COST_KEYS)
    spec = base
    if "opt_in" in values:
        share = _number("opt_in", values["opt_in"])
        if share > 1:
            raise ValueError(f"opt_in={values['opt_in']!r}: must be between 0 and 1")
        spec = dataclasses.replace(spec, opt_in=share)
    if "checkpoint_interval_minutes" in values:
        raw = values["checkpoint_interval_minutes"]
        interval = None if raw == "none" else _number("checkpoint_interval_minutes", raw) * 60
        spec = dataclasses.replace(spec, checkpoint_interval_s=interval)
    if "restart_overhead_s" in values:
        overhead = _number("restart_overhead_s", values["restart_overhead_s"])
        spec = dataclasses.replace(spec, restart_overhead_s=overhead)
    return spec
