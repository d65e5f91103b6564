"""A cheap, always-available sample-quality score used to keep the best checkpoint.

Sliced Wasserstein distance (Rabin et al. 2011; Karras et al. 2018 use it per Laplacian
level) between a fixed set of real images and generated ones, in pixel space: the mean over
random unit directions of the 1-D Wasserstein-1 distance between the two projected sets. It
needs no trained feature extractor, so it works on any data from step 0; the proper metrics
(FID/KID in a judge's features) live in ``ganforge.metrics``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sliced_wasserstein(a: Tensor, b: Tensor, n_projections: int = 128, seed: int = 0) -> float:
    """SWD between two equally sized sets of samples (N, ...), flattened; lower is better."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"sliced_wasserstein needs equal set sizes, got {a.shape[0]} and {b.shape[0]}")
    a = a.detach().float().flatten(1).cpu()
    b = b.detach().float().flatten(1).cpu()
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(a.shape[1], n_projections, generator=g)
    directions /= directions.norm(dim=0, keepdim=True)
    pa, _ = torch.sort(a @ directions, dim=0)  # (N, P)
    pb, _ = torch.sort(b @ directions, dim=0)
    return float((pa - pb).abs().mean())
