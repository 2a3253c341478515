"""Action heads, one per kind of action space: the distribution's parameters from features, and its
log-likelihood, entropy, samples and probabilities, written out rather than through
``torch.distributions`` (whose objects cost more than a small network's whole training step)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expertdata import spaces

LOG_STD_INIT = 0.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Head(nn.Module):
    """Maps features to distribution parameters; ``actions`` are in stored form (``expertdata`` rows)."""

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError

    def squared_error(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the deterministic action (``loss="mse"``); for discrete heads, the
        squared error of the probabilities against one-hot targets."""
        raise NotImplementedError

    def nll(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The batch's mean negative log-likelihood (behaviour cloning's loss)."""
        return -self.log_prob(params, actions).mean()


class CategoricalHead(Head):
    """Discrete actions (stored as shape (1,), from ``start``)."""

    def __init__(self, features: int, space: dict) -> None:
        super().__init__()
        self.n, self.start = int(space["n"]), int(space.get("start", 0))
        self.linear = nn.Linear(features, self.n)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def _targets(self, actions: torch.Tensor) -> torch.Tensor:
        return actions.reshape(-1).long() - self.start

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(logits, self._targets(actions), reduction="none")

    def nll(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, self._targets(actions))

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits, dim=-1)
        return -(logp.exp() * logp).sum(-1)

    def sample(self, logits: torch.Tensor, deterministic: bool) -> torch.Tensor:
        index = logits.argmax(-1) if deterministic else torch.multinomial(F.softmax(logits, -1), 1).squeeze(-1)
        return (index + self.start).unsqueeze(-1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=-1)

    def squared_error(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(self._targets(actions), self.n).float()
        return ((F.softmax(logits, -1) - target) ** 2).sum(-1)


class MultiCategoricalHead(Head):
    """MultiDiscrete actions: one categorical per dimension, independent."""

    def __init__(self, features: int, space: dict) -> None:
        super().__init__()
        self.nvec = [int(n) for n in np.asarray(space["nvec"]).ravel()]
        self.start = torch.as_tensor(np.asarray(space.get("start", 0)) + np.zeros(len(self.nvec), dtype=np.int64))
        self.linear = nn.Linear(features, sum(self.nvec))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def _split(self, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(logits, self.nvec, dim=-1)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        targets = actions.reshape(actions.shape[0], -1).long() - self.start
        parts = enumerate(self._split(logits))
        return -sum(F.cross_entropy(part, targets[:, i], reduction="none") for i, part in parts)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for part in self._split(logits):
            logp = F.log_softmax(part, -1)
            total = total - (logp.exp() * logp).sum(-1)
        return total

    def sample(self, logits: torch.Tensor, deterministic: bool) -> torch.Tensor:
        picks = [p.argmax(-1) if deterministic else torch.multinomial(F.softmax(p, -1), 1).squeeze(-1)
                 for p in self._split(logits)]
        return torch.stack(picks, dim=-1) + self.start

    def probabilities(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return [F.softmax(p, -1) for p in self._split(logits)]

    def squared_error(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        targets = actions.reshape(actions.shape[0], -1).long() - self.start
        return sum(((F.softmax(p, -1) - F.one_hot(targets[:, i], n).float()) ** 2).sum(-1)
                   for i, (p, n) in enumerate(zip(self._split(logits), self.nvec)))


class BernoulliHead(Head):
    """MultiBinary actions: one independent bit each."""

    def __init__(self, features: int, space: dict) -> None:
        super().__init__()
        self.size = int(np.prod(spaces.row_shape(space)))
        self.linear = nn.Linear(features, self.size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        target = actions.reshape(actions.shape[0], -1).float()
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        return F.binary_cross_entropy_with_logits(logits, p, reduction="none").sum(-1)

    def sample(self, logits: torch.Tensor, deterministic: bool) -> torch.Tensor:
        p = torch.sigmoid(logits)
        return (p > 0.5).to(torch.int8) if deterministic else torch.bernoulli(p).to(torch.int8)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def squared_error(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return ((torch.sigmoid(logits) - actions.reshape(actions.shape[0], -1).float()) ** 2).sum(-1)


class GaussianHead(Head):
    """Box actions: a diagonal Gaussian with a learned, state-independent log std. Where both bounds are
    finite the mean is squashed into them (so it respects the bounds); samples are clipped to them."""

    def __init__(self, features: int, space: dict) -> None:
        super().__init__()
        self.shape = spaces.row_shape(space)
        self.size = int(np.prod(self.shape))
        low, high = (torch.as_tensor(b.reshape(-1), dtype=torch.float32) for b in spaces.bounds(space))
        bounded = torch.isfinite(low) & torch.isfinite(high)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("bounded", bounded)
        self.register_buffer("centre", torch.where(bounded, (low + high) / 2, torch.zeros_like(low)))
        self.register_buffer("radius", torch.where(bounded, (high - low) / 2, torch.ones_like(low)))
        # Fewer ops when every dimension is bounded, or none is: this runs at every training step.
        self._squash = "all" if bool(bounded.all()) else ("none" if not bool(bounded.any()) else "some")
        self.linear = nn.Linear(features, self.size)
        self.log_std = nn.Parameter(torch.full((self.size,), LOG_STD_INIT))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        raw = self.linear(features)
        if self._squash == "all":
            return torch.addcmul(self.centre, self.radius, torch.tanh(raw))
        if self._squash == "none":
            return raw
        return torch.where(self.bounded, self.centre + self.radius * torch.tanh(raw), raw)

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions.reshape(mean.shape) - mean) * torch.exp(-self.log_std)
        return -0.5 * (z * z).sum(-1) - (self.log_std.sum() + self.size * _HALF_LOG_2PI)

    def nll(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions.reshape(mean.shape) - mean) * torch.exp(-self.log_std)
        return (0.5 * self.size) * (z * z).mean() + (self.log_std.sum() + self.size * _HALF_LOG_2PI)

    def entropy(self, mean: torch.Tensor) -> torch.Tensor:
        return (self.log_std + 0.5 + _HALF_LOG_2PI).sum(-1).expand(mean.shape[0])

    def sample(self, mean: torch.Tensor, deterministic: bool) -> torch.Tensor:
        action = mean if deterministic else mean + torch.randn_like(mean) * torch.exp(self.log_std)
        return torch.maximum(torch.minimum(action, self.high), self.low).reshape((-1,) + self.shape)

    def mean_std(self, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mean.reshape((-1,) + self.shape), torch.exp(self.log_std).expand_as(mean).reshape((-1,) + self.shape)

    def squared_error(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return ((mean - actions.reshape(mean.shape)) ** 2).sum(-1)


HEADS = {"Discrete": CategoricalHead, "MultiDiscrete": MultiCategoricalHead, "MultiBinary": BernoulliHead,
         "Box": GaussianHead}


def head_for(features: int, space: dict) -> Head:
    return HEADS[space["type"]](features, space)
