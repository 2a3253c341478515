"""Feature extractors: an MLP for vector observations, a small CNN for images, with input preprocessing."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from expertdata.schema import is_image

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(sizes: list[int], activation: str, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Per-dimension ``(x - mean) / std`` of flattened observations, clipped to [-10, 10].

    Kept as a scale and a shift, so it is one fused multiply-add per step; the identity until
    ``set_stats`` is called.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(size))
        self.register_buffer("shift", torch.zeros(size))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Normalise by these statistics (numpy; std floored at 1e-6)."""
        std = np.maximum(np.asarray(std, dtype=np.float64), 1e-6).reshape(-1)
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        with torch.no_grad():
            self.scale.copy_(torch.as_tensor(1.0 / std, dtype=torch.float32))
            self.shift.copy_(torch.as_tensor(-mean / std, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, obs.reshape(obs.shape[0], -1).float(), self.scale).clamp(-10.0, 10.0)


class VectorFeatures(nn.Module):
    """Flattened observations, normalised by per-dimension mean and std (from the dataset), then an MLP."""

    def __init__(self, obs_dim: int, net_arch: list[int], activation: str) -> None:
        super().__init__()
        self.normalizer = Normalizer(obs_dim)
        self.net = mlp([obs_dim] + list(net_arch), activation)
        self.out_dim = net_arch[-1] if net_arch else obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalizer(obs))


class ImageFeatures(nn.Module):
    """uint8 (N, H, W, C) images scaled to [0, 1]; the Nature-DQN CNN for large images, a two-layer CNN for
    small ones (under 36 pixels a side), then a linear layer."""

    def __init__(self, shape: tuple[int, ...], features: int = 256) -> None:
        super().__init__()
        h, w = shape[0], shape[1]
        c = shape[2] if len(shape) == 3 else 1
        if min(h, w) >= 36:
            conv = [nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(), nn.Conv2d(64, 64, 3, 1)]
        else:
            conv = [nn.Conv2d(c, 16, 3, 2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, padding=1)]
        self.cnn = nn.Sequential(*conv, nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, c, h, w)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features), nn.ReLU())
        self.out_dim = features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0
        x = x.unsqueeze(-1) if x.dim() == 3 else x
        return self.linear(self.cnn(x.permute(0, 3, 1, 2)))


def features_for(space: dict, net_arch: list[int], activation: str) -> nn.Module:
    """The extractor for an observation space (Box only: vectors or images)."""
    if space["type"] != "Box":
        raise ValueError(f"observations of a {space['type']} space are not supported; use a Box space")
    if is_image(space):
        return ImageFeatures(tuple(space["shape"]))
    dim = 1
    for d in space["shape"]:
        dim *= int(d)
    return VectorFeatures(dim, net_arch, activation)
