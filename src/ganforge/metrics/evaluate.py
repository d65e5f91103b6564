"""Evaluate generated samples against a real reference with the metrics asked for.

Metrics are registered by name (``@register_metric``, as in stylegan2-ada's metric_main);
each receives the same prepared context (features of both sets, the judge, the samples)
and returns `Score`s stamped with one shared `Protocol`.

Default reference: the dataset's *test* split, so a model is not scored on the images it
trained on; the protocol says which split was used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import ConfigError
from ganforge.metrics.protocol import Protocol, Score

JUDGED_DATASETS = ("mnist", "fashion_mnist", "digits")


class IdentityExtractor:
    """Raw values as features: for 2-D points, where the data space is the feature space."""

    name = "identity"
    weights_hash = ""
    input_shape = None

    def features(self, x: Tensor) -> np.ndarray:
        return x.detach().float().flatten(1).cpu().numpy().astype(np.float64)


class StackedExtractor:
    """Stacked MNIST: the MNIST judge's features of each channel, concatenated (3 x 128-d)."""

    def __init__(self, judge: Any):
        self.judge = judge
        self.name = f"{judge.name}_x3"
        self.weights_hash = judge.weights_hash
        self.input_shape = (3, *tuple(judge.input_shape)[1:])

    def features(self, x: Tensor) -> np.ndarray:
        return np.concatenate([self.judge.features(x[:, c : c + 1]) for c in range(x.shape[1])], axis=1)


@dataclass
class Context:
    """What every metric may use: both sample sets, their features, labels and the judge."""

    real: Tensor  # (N, ...) floats in [-1, 1] for images
    fake: Tensor
    real_labels: Tensor | None
    fake_labels: Tensor | None  # the labels the fake samples were requested with (conditional)
    dataset: str  # canonical name of the reference dataset
    extractor: Any
    judge: Any | None
    protocol: Protocol
    seed: int
    device: str
    train_reference: Callable[[], tuple[Tensor, Tensor]] | None = None  # real training data, for CAS
    _features: dict[str, np.ndarray] = field(default_factory=dict)

    def features(self, which: str) -> np.ndarray:
        if which not in self._features:
            self._features[which] = self.extractor.features(self.real if which == "real" else self.fake)
        return self._features[which]

    def score(self, metric: str, value: float, **extra: Any) -> Score:
        return Score(metric, float(value), self.protocol, extra=extra or None)


MetricFn = Callable[[Context], list[Score]]
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    def wrap(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return wrap


@register_metric("fd")
def _fd(ctx: Context) -> list[Score]:
    from ganforge.metrics.distances import frechet_distance

    return [ctx.score(f"fd_{ctx.extractor.name}", frechet_distance(ctx.features("real"), ctx.features("fake")))]


@register_metric("kid")
def _kid(ctx: Context) -> list[Score]:
    from ganforge.metrics.distances import kid

    mean, std = kid(ctx.features("real"), ctx.features("fake"), seed=ctx.seed)
    return [ctx.score(f"kid_{ctx.extractor.name}", mean, std=std)]


@register_metric("prdc")
def _prdc(ctx: Context) -> list[Score]:
    from ganforge.metrics.prdc import prdc

    values = prdc(ctx.features("real"), ctx.features("fake"), k=5)
    return [ctx.score(f"{k}_{ctx.extractor.name}", v, k=5) for k, v in values.items()]


@register_metric("modes")
def _modes(ctx: Context) -> list[Score]:
    if ctx.dataset in ("ring8", "grid25"):
        from ganforge.metrics.modes import mixture_mode_stats

        stats = mixture_mode_stats(ctx.fake.detach().cpu().numpy(), ctx.dataset)
        return [
            ctx.score("modes_captured", stats.modes_captured, n_modes=stats.n_modes, counts=list(stats.counts)),
            ctx.score("modes_visited", stats.modes_visited, n_modes=stats.n_modes),
            ctx.score("high_quality", stats.high_quality),
            ctx.score("kl_modes", stats.kl_to_uniform),
        ]
    if ctx.judge is None:
        raise ConfigError(f"metric 'modes' needs 2-D mixture data (ring8, grid25) or a judge; {ctx.dataset} has none")
    if ctx.dataset == "stacked_mnist":
        from ganforge.data.stacked import stacked_mode_stats

        stats = stacked_mode_stats(ctx.judge, ctx.fake)
        return [ctx.score(f"stacked_modes_{ctx.judge.name}", stats["modes_captured"], n_modes=1000),
                ctx.score(f"kl_stacked_modes_{ctx.judge.name}", stats["kl_to_uniform"],
                          kl_channels=stats["kl_channels"], total_correlation=stats["total_correlation"],
                          channel_histograms=stats["channel_histograms"])]
    from ganforge.metrics.classifier_scores import class_coverage

    cov = class_coverage(ctx.judge, ctx.fake)
    return [ctx.score(f"classes_covered_{ctx.judge.name}", cov["classes_covered"], histogram=cov.get("histogram")),
            ctx.score(f"kl_classes_{ctx.judge.name}", cov["kl_to_uniform"])]


@register_metric("judge")
def _judge(ctx: Context) -> list[Score]:
    if ctx.judge is None:
        raise ConfigError(f"metric 'judge' needs a domain classifier; none exists for {ctx.dataset}")
    if ctx.fake_labels is None:
        raise ConfigError("metric 'judge' scores conditional samples against their labels; this run is unconditional "
                          "(use 'modes' for the judge's class coverage)")
    from ganforge.metrics.classifier_scores import judge_accuracy

    return [ctx.score(f"judge_accuracy_{ctx.judge.name}", judge_accuracy(ctx.judge, ctx.fake, ctx.fake_labels))]


@register_metric("cas")
def _cas(ctx: Context) -> list[Score]:
    if ctx.fake_labels is None or ctx.real_labels is None:
        raise ConfigError("metric 'cas' (classification accuracy score) needs a conditional model and labelled data")
    from ganforge.metrics.classifier_scores import classification_accuracy_score

    value = classification_accuracy_score(ctx.fake, ctx.fake_labels, ctx.real, ctx.real_labels, seed=ctx.seed,
                                          device=ctx.device)
    return [ctx.score("cas", value, trained_on="generated", tested_on=ctx.protocol.reference)]


def default_metrics(dataset: str, conditional: bool, kind: str) -> list[str]:
    names = ["fd", "kid", "prdc"]
    if kind == "vector" or dataset in ("stacked_mnist",) or dataset in JUDGED_DATASETS:
        names.append("modes")
    if conditional and (dataset in JUDGED_DATASETS):
        names.append("judge")
    return names


def make_extractor(dataset: str, kind: str, extractor: str = "auto", *, data_dir: str | None = None,
                   device: str = "cpu", progress: bool = True, inception_path: str | None = None,
                   inception_sha256: str | None = None) -> tuple[Any, Any | None]:
    """(feature extractor, judge or None) for a reference dataset."""
    judge = None
    judge_name = "mnist" if dataset == "stacked_mnist" else dataset
    if kind == "image" and judge_name in JUDGED_DATASETS:
        from ganforge.metrics.judge import get_judge

        judge = get_judge(judge_name, data_dir=data_dir, device=device, progress=progress)
    if extractor == "auto":
        extractor = "identity" if kind == "vector" else ("judge" if judge is not None else "inception")
    if extractor == "identity":
        return IdentityExtractor(), judge
    if extractor == "judge":
        if judge is None:
            raise ConfigError(f"no domain classifier for {dataset!r} (judges exist for {', '.join(JUDGED_DATASETS)} "
                              "and stacked_mnist); use --extractor inception")
        return (StackedExtractor(judge) if dataset == "stacked_mnist" else judge), judge
    if extractor == "inception":
        from ganforge.metrics.inception import InceptionExtractor

        return InceptionExtractor(inception_path, sha256=inception_sha256), judge
    raise ConfigError(f"unknown extractor {extractor!r}: use auto, judge, inception or identity")


def _fit_to(x: Tensor, shape: tuple[int, ...] | None) -> tuple[Tensor, str]:
    """Resize images to the extractor's input size (bilinear, antialiased), saying what was done."""
    if shape is None or x.dim() != 4 or tuple(x.shape[2:]) == tuple(shape[-2:]):
        return x, "none"
    h, w = shape[-2:]
    resized = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return resized, f"bilinear {x.shape[2]}x{x.shape[3]}->{h}x{w}"


def evaluate(
    fake: Tensor,
    real: Tensor,
    *,
    dataset: str,
    reference: str,
    metrics: Sequence[str] | None = None,
    fake_labels: Tensor | None = None,
    real_labels: Tensor | None = None,
    kind: str = "image",
    extractor: str | tuple[Any, Any | None] = "auto",
    seed: int = 0,
    data_dir: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> list[Score]:
    """Score ``fake`` against ``real`` (both (N, ...) floats, images in [-1, 1]).

    ``dataset`` names the reference data (picks the judge and mode definitions), ``reference``
    says which split it is (stamped into the protocol). ``extractor`` is "auto" (the domain
    judge for MNIST-like data, raw values for 2-D points, else Inception), "judge",
    "inception", "identity", or a prepared ``(extractor, judge)`` pair.
    """
    names = list(metrics) if metrics else default_metrics(dataset, fake_labels is not None, kind)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
    if fake.shape[1:] != real.shape[1:]:
        if kind != "image" or fake.dim() != 4 or fake.shape[1] != real.shape[1]:
            raise ConfigError(f"fake samples have shape {tuple(fake.shape[1:])} but the reference "
                              f"{reference} has {tuple(real.shape[1:])}")
    if isinstance(extractor, tuple):
        ext, judge = extractor
    else:
        ext, judge = make_extractor(dataset, kind, extractor, data_dir=data_dir, device=device, progress=progress)
    fake, resize = _fit_to(fake, getattr(ext, "input_shape", None))
    real, resize_real = _fit_to(real, getattr(ext, "input_shape", None))
    if resize_real != "none":
        resize = f"fake {resize}; real {resize_real}"
    if resize == "none" and getattr(ext, "input_shape", None) is None and hasattr(ext, "protocol"):
        resize = str(ext.protocol().get("resize", "none"))  # e.g. InceptionV3 resizes to 299x299 inside
    protocol = Protocol(extractor=ext.name, extractor_hash=getattr(ext, "weights_hash", ""), n_real=int(real.shape[0]),
                        n_fake=int(fake.shape[0]), reference=reference, resize=resize, seed=seed)
    ctx = Context(real=real, fake=fake, real_labels=real_labels, fake_labels=fake_labels, dataset=dataset,
                  extractor=ext, judge=judge, protocol=protocol, seed=seed, device=device)
    scores: list[Score] = []
    for name in names:
        scores.extend(METRICS[name](ctx))
    return scores
