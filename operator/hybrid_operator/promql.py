"""The default PromQL for per-node utilisation (0..1), and how its answers are read.

The same queries answer on the dev cluster because its exporter publishes the series of the
kubelet resource metrics, kube-state-metrics and the NVIDIA DCGM exporter. Each query
returns one series per node: CPU and memory labelled ``node``, GPU labelled ``Hostname``
(DCGM's name for the node).

An instant query stamps every series with the time Prometheus evaluated it, not with the
time the node was measured. So each default query has a sample-time query beside it that
answers, per node, when the oldest raw series it reads was last scraped
(``timestamp()`` of a plain selector is the scrape time of the sample it found).

Answers are read series by series: one series that is not a number, lies outside 0..1
(with a little room, :data:`MAX_FRACTION`), names no node or carries a timestamp from the
future is dropped with a :class:`DropReason`; the other series stand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

DEFAULT_RATE_WINDOW = "1m"

CPU_UTILISATION = (
    "sum by (node) (rate(node_cpu_usage_seconds_total[{window}]))"
    ' / sum by (node) (kube_node_status_capacity{{resource="cpu"}})'
)
"""CPU cores in use over the window divided by CPU capacity."""

MEMORY_UTILISATION = (
    "sum by (node) (node_memory_working_set_bytes)"
    ' / sum by (node) (kube_node_status_capacity{{resource="memory"}})'
)
"""Working-set bytes divided by memory capacity."""

GPU_UTILISATION = "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL) / 100"
"""Mean DCGM GPU utilisation over the node's GPUs."""

SAMPLE_TIME_QUERIES = {
    "cpu": "min by (node) (timestamp(node_cpu_usage_seconds_total))",
    "memory": "min by (node) (timestamp(node_memory_working_set_bytes))",
    "gpu": "min by (Hostname) (timestamp(DCGM_FI_DEV_GPU_UTIL))",
}
"""When each default query's input was scraped, per node (the oldest of its series)."""

#: Labels that name the node in common exporters, in the order they are tried.
NODE_LABELS = ("node", "nodename", "kubernetes_node", "Hostname", "instance")
#: Above this a utilisation is garbage, not load (``rate()`` may overshoot 1 a little).
MAX_FRACTION = 1.25
#: How far ahead of our clock a sample may be stamped before it is refused.
CLOCK_SKEW_S = 30.0


def utilisation_queries(window: str = DEFAULT_RATE_WINDOW) -> dict[str, str]:
    """The three queries by resource, with ``window`` as the CPU rate window (e.g. ``1m``)."""
    return {
        "cpu": CPU_UTILISATION.format(window=window),
        "memory": MEMORY_UTILISATION.format(),
        "gpu": GPU_UTILISATION,
    }


class DropReason(Enum):
    """Why one series of an answer was not used."""

    NOT_A_NUMBER = "not-a-number"
    OUT_OF_RANGE = "out-of-range"
    NO_NODE = "no-node-label"
    BAD_TIMESTAMP = "bad-timestamp"
    FUTURE_TIMESTAMP = "future-timestamp"


#: What a series calls its node: the first of :data:`NODE_LABELS` it carries, ``instance``
#: without its port; a node name, or one of the node's addresses (see the collector).
SeriesNode = str


@dataclass(frozen=True)
class NodeSample:
    """One resource's utilisation on one node, and when the node was measured."""

    fraction: float
    observed_at_s: float


@dataclass(frozen=True)
class DroppedSeries:
    """A series left out of an answer, and why."""

    node: SeriesNode
    reason: DropReason
    detail: str


@dataclass
class ParsedAnswer:
    """An answer's usable samples by the node they name, and the series left out."""

    samples: dict[SeriesNode, NodeSample] = field(default_factory=dict)
    dropped: list[DroppedSeries] = field(default_factory=list)
    series: int = 0


def series_node(metric: Mapping[str, Any]) -> SeriesNode:
    """What a series calls its node, ``instance``'s port cut off (``10.0.0.5:9100``);
    empty when it carries none of :data:`NODE_LABELS`."""
    for label in NODE_LABELS:
        value = str(metric.get(label) or "")
        if value:
            return _host_of(value) if label == "instance" else value
    return ""


def _host_of(instance: str) -> str:
    if instance.startswith("["):  # [fd00::1]:9100
        return instance[1 : instance.find("]")] if "]" in instance else instance
    host, sep, port = instance.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else instance


def _number(raw: object) -> float:
    try:
        return float(str(raw))
    except ValueError:
        return math.nan


def _series_list(result: Any) -> list[Mapping[str, Any]]:
    if not isinstance(result, list):
        raise ValueError(f"expected a vector, got {type(result).__name__}")
    return [s if isinstance(s, Mapping) else {} for s in result]


def _value_pair(series: Mapping[str, Any]) -> tuple[float, object]:
    pair = series.get("value")
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        return math.nan, pair
    return _number(pair[0]), pair[1]


def parse_sample_times(result: Any) -> dict[SeriesNode, float]:
    """A sample-time answer: per node, the scrape time (seconds) its value query read."""
    out: dict[SeriesNode, float] = {}
    for series in _series_list(result):
        node = series_node(series.get("metric") or {})
        if node:
            out[node] = _number(_value_pair(series)[1])
        # a series naming no node cannot be paired with a value: nothing to keep
    return out


def parse_vector(
    result: Any, now_s: float, sample_times: Mapping[SeriesNode, float] | None = None
) -> ParsedAnswer:
    """An instant-vector answer as samples by node, each aged by its own timestamp.

    A series's time is its sample-time answer where there is one, else the query's
    evaluation time. Bad series are dropped one by one; an answer that is not a vector
    raises ``ValueError``.
    """
    parsed = ParsedAnswer()
    for series in _series_list(result):
        parsed.series += 1
        node = series_node(series.get("metric") or {})
        evaluated_at, raw = _value_pair(series)
        at = (sample_times or {}).get(node, evaluated_at)
        value = _number(raw)
        if not node:
            reason, detail = DropReason.NO_NODE, f"labels {dict(series.get('metric') or {})}"
        elif not math.isfinite(value):
            reason, detail = DropReason.NOT_A_NUMBER, f"value {raw!r}"
        elif not 0.0 <= value <= MAX_FRACTION:
            reason, detail = DropReason.OUT_OF_RANGE, f"value {raw!r} is not in 0..1"
        elif not math.isfinite(at):
            reason, detail = DropReason.BAD_TIMESTAMP, "no usable timestamp"
        elif at > now_s + CLOCK_SKEW_S:
            reason, detail = DropReason.FUTURE_TIMESTAMP, f"stamped {at - now_s:.0f} s ahead"
        else:
            parsed.samples[node] = NodeSample(value, at)
            continue
        parsed.dropped.append(DroppedSeries(node, reason, detail))
    return parsed
