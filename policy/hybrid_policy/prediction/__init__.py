"""Run-time prediction: how long a pending pod will run, and how long a running pod has left.

Every :class:`Prediction` says where it came from (:class:`PredictionSource`): the
running pod's reported progress, the user's estimate on the pod, the history of pods of
the same namespace and job class that finished earlier, or the task type's prior. A
:class:`RuntimePredictor` is fed by its driver (the simulator; later the operator) with
starts, progress reports and completions, and answered from what it was fed only.
"""

from hybrid_policy.prediction.model import Prediction, PredictionSource, RunningPod
from hybrid_policy.prediction.predictor import PredictorSettings, RuntimePredictor

__all__ = [
    "Prediction",
    "PredictionSource",
    "PredictorSettings",
    "RunningPod",
    "RuntimePredictor",
]
