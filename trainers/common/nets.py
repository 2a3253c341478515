"""Feature extractors: observations of any supported space turned into features for a network.

An ``encoder`` makes flat float inputs of a batch of observations as the dataset stores them: a Box
vector normalised per dimension, a Discrete value one-hot (FrozenLake, Taxi), a MultiDiscrete row as
concatenated one-hots, MultiBinary bits as floats. Image observations go through a CNN instead. A Dict or
Tuple space's observations come as a dict of batches by leaf path: its vector leaves are encoded and go
through one MLP together, each image leaf through its own CNN, and the outputs are concatenated. Every
extractor has ``out_dim`` and ``set_stats(mean, std)`` (observation statistics, used where they apply; for a
composite space, every leaf's flattened statistics in leaf order).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expertdata import schema, spaces

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(sizes: list[int], activation: str, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Per-dimension ``(x - mean) / std`` of flattened Box observations, clipped to [-10, 10].

    Kept as a scale and a shift, so it is one fused multiply-add per step; the identity until
    ``set_stats`` is called.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.out_dim = size
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


class OneHot(nn.Module):
    """Discrete (one value) and MultiDiscrete (one per entry) observations as concatenated one-hot codes;
    MultiBinary bits as they are. Statistics do not apply."""

    def __init__(self, space: dict) -> None:
        super().__init__()
        kind = space["type"]
        if kind == "MultiBinary":
            self.sizes: list[int] = []
            self.out_dim = int(np.prod(spaces.row_shape(space)))
        else:
            nvec = [int(space["n"])] if kind == "Discrete" else [int(n) for n in np.asarray(space["nvec"]).ravel()]
            self.sizes, self.out_dim = nvec, sum(nvec)
        low, _ = spaces.bounds(space)
        self.register_buffer("start", torch.as_tensor(np.asarray(low, dtype=np.int64).reshape(-1)))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Nothing to normalise."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        rows = obs.reshape(obs.shape[0], -1)
        if not self.sizes:
            return rows.float()
        codes = rows.long() - self.start
        return torch.cat([F.one_hot(codes[:, i], n).float() for i, n in enumerate(self.sizes)], dim=-1)


def encoder_for(space: dict) -> nn.Module:
    """Flat float inputs for the observations of a non-image space."""
    if space["type"] == "Box":
        return Normalizer(int(np.prod(spaces.row_shape(space), dtype=np.int64)))
    return OneHot(space)


class VectorFeatures(nn.Module):
    """Encoded observations (normalised by the dataset's statistics, or one-hot), then an MLP."""

    def __init__(self, space: dict, net_arch: list[int], activation: str) -> None:
        super().__init__()
        self.encoder = encoder_for(space)
        self.net = mlp([self.encoder.out_dim] + list(net_arch), activation)
        self.out_dim = net_arch[-1] if net_arch else self.encoder.out_dim

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.encoder.set_stats(mean, std)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.encoder(obs))


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

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Images are scaled to [0, 1], not normalised."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0
        x = x.unsqueeze(-1) if x.dim() == 3 else x
        return self.linear(self.cnn(x.permute(0, 3, 1, 2)))


class LeafFeatures(nn.Module):
    """A composite space's observations (a dict of batches by leaf path): the vector leaves' encodings
    concatenated and passed through one MLP (``net_arch``; none when empty), each image leaf through its own
    CNN, every output concatenated."""

    def __init__(self, space: dict, net_arch: list[int], activation: str) -> None:
        super().__init__()
        leaves = spaces.leaves(space)
        self.paths = list(leaves)
        self.sizes = [int(np.prod(spaces.row_shape(leaf), dtype=np.int64)) for leaf in leaves.values()]
        self.image_paths = [path for path, leaf in leaves.items() if schema.is_image(leaf)]
        self.vector_paths = [path for path in self.paths if path not in self.image_paths]
        # ModuleDict keys may not hold '.', which leaf paths may: modules are named by position.
        self.images = nn.ModuleList([ImageFeatures(tuple(leaves[p]["shape"])) for p in self.image_paths])
        self.encoders = nn.ModuleList([encoder_for(leaves[p]) for p in self.vector_paths])
        width = sum(e.out_dim for e in self.encoders)
        self.net = mlp([width] + list(net_arch), activation) if self.encoders else nn.Sequential()
        vector_out = (net_arch[-1] if net_arch else width) if self.encoders else 0
        self.out_dim = vector_out + sum(f.out_dim for f in self.images)

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Split the leaves' statistics (flattened, in leaf order) among the vector leaves' encoders."""
        bounds = np.cumsum([0] + self.sizes)
        where = {path: slice(bounds[i], bounds[i + 1]) for i, path in enumerate(self.paths)}
        mean, std = np.asarray(mean).reshape(-1), np.asarray(std).reshape(-1)
        for path, encoder in zip(self.vector_paths, self.encoders):
            encoder.set_stats(mean[where[path]], std[where[path]])

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [features(obs[path]) for path, features in zip(self.image_paths, self.images)]
        if self.encoders:
            vectors = torch.cat([encoder(obs[path]) for path, encoder in zip(self.vector_paths, self.encoders)], -1)
            parts.insert(0, self.net(vectors))
        return torch.cat(parts, -1)


def features_for(space: dict, net_arch: list[int], activation: str) -> nn.Module:
    """The extractor for an observation space: a CNN for images, an encoder and an MLP for vectors, both
    for the leaves of a composite space."""
    if spaces.is_composite(space):
        return LeafFeatures(space, net_arch, activation)
    if schema.is_image(space):
        return ImageFeatures(tuple(space["shape"]))
    return VectorFeatures(space, net_arch, activation)


def observation_encoder(space: dict) -> nn.Module:
    """Observations as the discriminator's inputs: a CNN's features for images, else encoded rows (a composite
    space's leaves each so, concatenated)."""
    if spaces.is_composite(space):
        return LeafFeatures(space, [], "tanh")
    return ImageFeatures(tuple(space["shape"])) if schema.is_image(space) else encoder_for(space)
