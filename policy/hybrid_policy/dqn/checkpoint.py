"""Saving and loading Q-network checkpoints, safely and with clear errors.

A checkpoint is a plain ``torch.save`` dictionary: a format tag, the feature schema
version and names it was trained with, the layer sizes, training metadata and the
weights. Loading uses ``weights_only=True`` (no pickled code runs) and checks every field;
any problem raises :class:`CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from hybrid_policy.dqn.network import QNetwork
from hybrid_policy.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION

FORMAT_TAG = "hybrid-scheduler-dqn/1"
DEFAULT_CHECKPOINT_NAME = "dqn-default.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or made for other features."""


@dataclass
class Checkpoint:
    """A loaded model and what it says about itself."""

    network: QNetwork
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


def default_checkpoint_path() -> Path:
    """The checkpoint shipped inside the package."""
    return Path(str(resources.files("hybrid_policy.dqn") / "default" / DEFAULT_CHECKPOINT_NAME))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(network: QNetwork, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write ``network`` with its feature schema and ``metadata`` (plain values only)."""
    payload = {
        "format": FORMAT_TAG,
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "hidden": list(network.hidden),
        "metadata": dict(metadata),
        "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path}: not a hybrid-scheduler DQN checkpoint (format tag)")
    return payload


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and check a checkpoint; raises :class:`CheckpointError` on any problem."""
    payload = _read(path)
    version = payload.get("feature_schema_version")
    if version != FEATURE_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: feature schema version {version!r}, this build computes version "
            f"{FEATURE_SCHEMA_VERSION}; retrain with 'hybrid-scheduler train'"
        )
    names = payload.get("feature_names")
    if names != list(FEATURE_NAMES):
        raise CheckpointError(
            f"{path}: feature names differ from this build's schema version "
            f"{FEATURE_SCHEMA_VERSION}; retrain with 'hybrid-scheduler train'"
        )
    hidden = payload.get("hidden")
    state = payload.get("state_dict")
    if not isinstance(hidden, list) or not isinstance(state, dict):
        raise CheckpointError(f"{path}: missing layer sizes or weights")
    network = QNetwork(len(FEATURE_NAMES), [int(h) for h in hidden])
    # Checkpoints written before ablation support hide no feature.
    state.setdefault("input_mask", torch.ones(len(FEATURE_NAMES)))
    try:
        network.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the network ({first})") from None
    network.eval()
    metadata = payload.get("metadata")
    return Checkpoint(network, str(path), dict(metadata) if isinstance(metadata, dict) else {})
