"""Blocks shared by the network families: condition checks and embeddings, the projection head,
spectral normalisation and the minibatch standard-deviation layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

CONDITION_MODES = ("projection", "concat")
SPECTRAL_NORM_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)


def check_condition(
    n_classes: int, cond_dim: int, batch: int | None, labels: Tensor | None, cond: Tensor | None
) -> None:
    """Raise ValueError unless ``labels``/``cond`` are exactly what the model was built for.

    Why: a condition that is silently ignored (or missing) trains the wrong model without any error.
    ``batch`` is the expected batch size; ``None`` skips that check.
    """
    if n_classes > 0:
        if labels is None:
            raise ValueError(f"this model is class-conditional ({n_classes} classes): pass labels, a (B,) int64 tensor")
        if labels.dim() != 1 or (batch is not None and labels.shape[0] != batch):
            expected = f"({batch},)" if batch is not None else "(B,)"
            raise ValueError(f"labels must have shape {expected}, got {tuple(labels.shape)}")
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"labels must be an integer (int64) tensor of class indices, got {labels.dtype}")
    elif labels is not None:
        raise ValueError("labels were given but this model is not class-conditional (spec.n_classes == 0)")
    if cond_dim > 0:
        if cond is None:
            raise ValueError(f"this model takes a vector condition: pass cond, a (B, {cond_dim}) float tensor")
        if cond.dim() != 2 or cond.shape[1] != cond_dim or (batch is not None and cond.shape[0] != batch):
            expected = f"({batch if batch is not None else 'B'}, {cond_dim})"
            raise ValueError(f"cond must have shape {expected}, got {tuple(cond.shape)}")
    elif cond is not None:
        raise ValueError("cond was given but this model takes no vector condition (spec.cond_dim == 0)")


class ConditionEmbedding(nn.Module):
    """Maps class labels (``nn.Embedding``) and/or a vector condition (``nn.Linear``) to one
    ``(B, out_dim)`` vector, so models handle both kinds of condition through a single code path.

    When both are present (``n_classes > 0`` and ``cond_dim > 0``) the two embeddings are summed.
    """

    def __init__(self, n_classes: int, cond_dim: int, out_dim: int, *, bias: bool = True) -> None:
        super().__init__()
        if n_classes <= 0 and cond_dim <= 0:
            raise ValueError("ConditionEmbedding needs n_classes > 0 (labels) or cond_dim > 0 (vectors)")
        self.n_classes = n_classes
        self.cond_dim = cond_dim
        self.out_dim = out_dim
        self.label_embedding = nn.Embedding(n_classes, out_dim) if n_classes > 0 else None
        self.condition_linear = nn.Linear(cond_dim, out_dim, bias=bias) if cond_dim > 0 else None

    def forward(self, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        check_condition(self.n_classes, self.cond_dim, None, labels, cond)
        embedding: Tensor | None = None
        if self.label_embedding is not None:
            assert labels is not None
            embedding = self.label_embedding(labels)  # (B, out_dim)
        if self.condition_linear is not None:
            assert cond is not None
            projected = self.condition_linear(cond)  # (B, out_dim)
            embedding = projected if embedding is None else embedding + projected
        assert embedding is not None
        return embedding


class ProjectionHead(nn.Module):
    """The conditional term of the projection discriminator (Miyato & Koyama 2018): ``<embed(y), phi(x)>``.

    Added to an unconditional logit ``linear(phi(x))``; conditions through an inner product rather than
    concatenation, which is what makes projection D's train stably on many classes.
    """

    def __init__(self, n_classes: int, cond_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.embed = ConditionEmbedding(n_classes, cond_dim, feature_dim, bias=False)
        # Xavier like the authors' code: nn.Embedding's N(0, 1) would let the projection term
        # outweigh the unconditional logit by a factor of about feature_dim at initialisation.
        for layer in (self.embed.label_embedding, self.embed.condition_linear):
            if layer is not None:
                nn.init.xavier_uniform_(layer.weight)

    def forward(self, features: Tensor, labels: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """``features`` is phi(x), ``(B, feature_dim)``; returns the ``(B,)`` conditional logit term."""
        return (self.embed(labels, cond) * features).sum(dim=1)  # (B,)


class MinibatchStdDev(nn.Module):
    """Appends one feature (map): the standard deviation over a group of samples, averaged over all
    features and positions (Karras et al. 2018). Lets D see how varied a batch is, which penalises
    mode collapse.

    Works on ``(B, C, H, W)`` (adds a channel) and ``(B, F)`` (adds a feature). The group is the largest
    divisor of B that is at most ``group_size``; samples ``i`` and ``i + B/G`` share a group.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"MinibatchStdDev group_size must be >= 1, got {group_size}")
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        batch, rest = x.shape[0], x.shape[1:]
        group = max(g for g in range(1, min(self.group_size, batch) + 1) if batch % g == 0)
        grouped = x.reshape(group, batch // group, *rest)  # (G, B/G, C, H, W) or (G, B/G, F)
        grouped = grouped - grouped.mean(dim=0, keepdim=True)
        std = (grouped.square().mean(dim=0) + self.eps).sqrt()  # (B/G, C, H, W) or (B/G, F)
        std = std.flatten(1).mean(dim=1).repeat(group)  # (B,)
        stat = std.view(batch, *([1] * len(rest))).expand(batch, 1, *rest[1:])  # (B, 1, H, W) or (B, 1)
        return torch.cat([x, stat.to(x.dtype)], dim=1)  # (B, C + 1, H, W) or (B, F + 1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


def add_spectral_norm_(module: nn.Module) -> nn.Module:
    """Wrap the weight of every Linear, Conv and Embedding inside ``module`` with spectral normalisation
    (Miyato et al. 2018), in place; keeps D 1-Lipschitz per layer, which stabilises GAN training."""
    for layer in list(module.modules()):
        if isinstance(layer, SPECTRAL_NORM_LAYERS) and not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer)
    return module


def refresh_spectral_norm_(module: nn.Module, n_iterations: int = 15) -> None:
    """Re-run the power iteration of every spectral-norm weight in ``module``.

    Why: after its weight is re-initialised, a layer's stored singular vectors belong to the old weight,
    and its first forward passes would be scaled by a wrong sigma. 15 iterations is what torch runs
    when it registers the parametrization.
    """
    for layer in module.modules():
        if not parametrize.is_parametrized(layer, "weight"):
            continue
        parametrization = layer.parametrizations["weight"]
        was_training = parametrization.training
        parametrization.train()  # the spectral-norm parametrization only iterates in train mode
        with torch.no_grad():
            for _ in range(n_iterations):
                _ = layer.weight
        parametrization.train(was_training)


def weight_of(layer: nn.Module) -> Tensor:
    """The trainable weight of ``layer``: the original tensor if it is parametrized (e.g. spectral norm),
    so that initialisers write to the parameter and not to a computed copy."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations["weight"].original
    weight = layer.weight
    assert isinstance(weight, Tensor)
    return weight
