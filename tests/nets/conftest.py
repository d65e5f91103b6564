"""Seed torch before every network test, so random weights and inputs cannot make a test flaky."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
