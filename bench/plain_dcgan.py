"""The reference: the pytorch/examples DCGAN training step (dcgan/main.py), kept to its structure.

Shared by the benchmarks so that every comparison runs the same baseline.
"""

from __future__ import annotations

import torch
from torch import nn


class PlainLoop:
    """The pytorch/examples dcgan/main.py training step, verbatim in structure."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, images: torch.Tensor, batch_size: int,
                 seed: int = 0):
        self.netG, self.netD = generator, discriminator
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.images = images
        self.batch_size = batch_size
        self.i = 0
        self.shuffle = torch.Generator().manual_seed(seed)  # DataLoader(shuffle=True), minus the workers
        self.perm = torch.randperm(images.shape[0], generator=self.shuffle)

    def step(self) -> None:
        n = self.images.shape[0] // self.batch_size
        if self.i and self.i % n == 0:
            self.perm = torch.randperm(self.images.shape[0], generator=self.shuffle)
        idx = self.perm[(self.i % n) * self.batch_size : (self.i % n + 1) * self.batch_size]
        self.i += 1
        real = self.images[idx].float() / 127.5 - 1
        b = real.shape[0]
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        label = torch.full((b,), 1.0)
        output = torch.sigmoid(self.netD(real)).view(-1)
        errD_real = self.criterion(output, label)  # noqa: N806
        errD_real.backward()
        noise = torch.randn(b, self.netG.z_dim)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = torch.sigmoid(self.netD(fake.detach())).view(-1)
        errD_fake = self.criterion(output, label)  # noqa: N806
        errD_fake.backward()
        self.optD.step()
        # (2) update G: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)
        output = torch.sigmoid(self.netD(fake)).view(-1)
        errG = self.criterion(output, label)  # noqa: N806
        errG.backward()
        self.optG.step()
