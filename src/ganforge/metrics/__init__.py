"""Honest evaluation: plain functions on feature arrays, and scores stamped with their protocol.

>>> from ganforge.metrics import frechet_distance, kid, prdc
>>> fd = frechet_distance(real_features, fake_features)   # doctest: +SKIP
"""

from ganforge.metrics.distances import feature_statistics, frechet_distance, gaussian_frechet_distance, kid
from ganforge.metrics.evaluate import METRICS, evaluate, register_metric
from ganforge.metrics.modes import ModeStats, mixture_mode_stats, mode_stats
from ganforge.metrics.prdc import prdc
from ganforge.metrics.protocol import Protocol, Score, append_scores, read_scores

__all__ = [
    "METRICS",
    "ModeStats",
    "Protocol",
    "Score",
    "append_scores",
    "evaluate",
    "feature_statistics",
    "frechet_distance",
    "gaussian_frechet_distance",
    "kid",
    "mixture_mode_stats",
    "mode_stats",
    "prdc",
    "read_scores",
    "register_metric",
]
