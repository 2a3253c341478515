"""The GAIL discriminator: D(s, a), the probability that a transition is the expert's.

Input: observations normalised by running statistics of expert and generator observations (an image goes
through a CNN instead, a discrete observation is one-hot), and actions encoded for the space (one-hot for
discrete kinds, bits for MultiBinary, Box actions clipped to their bounds, since the env clips them too).
Trained by binary cross-entropy, expert 1 and generator 0, with an entropy bonus (``adversary_entcoeff``)
and an optional zero-centred gradient penalty. One more input marks the absorbing state that follows a
terminal transition (Discriminator-Actor-Critic): its row is zero but for that mark.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expertdata import spaces

from ..common.nets import mlp, observation_encoder


def action_size(space: dict) -> int:
    kind = space["type"]
    if kind == "Discrete":
        return int(space["n"])
    if kind == "MultiDiscrete":
        return int(np.sum(space["nvec"]))
    return int(np.prod(spaces.row_shape(space)))


class Discriminator(nn.Module):
    """Logits of D(s, a); ``reward`` turns them into the generator's reward.

    :param hidden_size: units of each of the two hidden layers (SB2's ``hidden_size_adversary``).
    """

    def __init__(self, observation_space: dict, action_space: dict, hidden_size: int = 100) -> None:
        super().__init__()
        self.action_space = action_space
        self.observations = observation_encoder(observation_space)
        obs_size = self.observations.out_dim
        if action_space["type"] == "Box":
            low, high = (torch.as_tensor(b.reshape(-1), dtype=torch.float32) for b in spaces.bounds(action_space))
            self.register_buffer("act_low", low)
            self.register_buffer("act_high", high)
        self.net = mlp([obs_size + action_size(action_space) + 1, hidden_size, hidden_size, 1], "tanh",
                       last_activation=False)
        # An untrained discriminator is indifferent: D = 1/2 everywhere, so the logit reward starts at 0
        # and pays for nothing, surviving included, until the discriminator has learned something.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def set_observation_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.observations.set_stats(mean, std)

    def encode(self, obs: torch.Tensor, actions: torch.Tensor, absorbing: int = 0) -> torch.Tensor:
        """The network's input for a batch, followed by ``absorbing`` rows of the absorbing state."""
        x = self.observations(obs)
        kind = self.action_space["type"]
        if kind == "Discrete":
            a = F.one_hot(actions.reshape(-1).long() - int(self.action_space.get("start", 0)),
                          int(self.action_space["n"])).float()
        elif kind == "MultiDiscrete":
            start = np.asarray(self.action_space.get("start", 0)) + np.zeros(len(self.action_space["nvec"]), int)
            rows = actions.reshape(actions.shape[0], -1).long() - torch.as_tensor(start)
            a = torch.cat([F.one_hot(rows[:, i], int(n)).float() for i, n in enumerate(self.action_space["nvec"])], -1)
        elif kind == "MultiBinary":
            a = actions.reshape(actions.shape[0], -1).float()
        else:
            a = torch.maximum(torch.minimum(actions.reshape(actions.shape[0], -1).float(), self.act_high), self.act_low)
        rows = torch.cat([x, a, torch.zeros(len(x), 1)], dim=-1)
        return torch.cat([rows, self.absorbing_rows(absorbing)]) if absorbing else rows

    def absorbing_rows(self, n: int) -> torch.Tensor:
        rows = torch.zeros(n, self.net[0].in_features)
        rows[:, -1] = 1.0
        return rows

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(self.encode(obs, actions)).squeeze(-1)

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, actions: torch.Tensor, form: str) -> torch.Tensor:
        """``positive``: SB2's ``-log(1 - D)``, always positive (a survival bonus where episodes end on
        failure); ``logit``: ``log D - log(1 - D)``, positive where the transition looks like the expert's,
        negative where it does not."""
        return _reward(self(obs, actions), form)

    @torch.no_grad()
    def absorbing_reward(self, form: str) -> float:
        """The reward of every step spent in the absorbing state."""
        return float(_reward(self.net(self.absorbing_rows(1)).squeeze(-1), form)[0])

    def loss(self, expert: tuple[Any, torch.Tensor], generator: tuple[Any, torch.Tensor],
             entcoeff: float, gradient_penalty: float, absorbing: tuple[int, int] = (0, 0),
             penalty_at: str = "interpolates") -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy (expert 1, generator 0) minus ``entcoeff`` times the mean entropy of D,
        plus ``gradient_penalty`` times the squared norm of D's gradient (zero-centred, which keeps D smooth
        without biasing it, unlike WGAN's norm-one form) at ``penalty_at``: ``interpolates``, inputs
        interpolated between the two batches, or ``expert``, the expert's inputs (R1, Mescheder et al. 2018).
        ``absorbing``: rows of the absorbing state added to the expert's and the generator's batch, which
        then hold as many rows each."""
        x_expert, x_generator = self.encode(*expert, absorbing[0]), self.encode(*generator, absorbing[1])
        logits_expert, logits_generator = self.net(x_expert).squeeze(-1), self.net(x_generator).squeeze(-1)
        logits = torch.cat([logits_expert, logits_generator])
        labels = torch.cat([torch.ones_like(logits_expert), torch.zeros_like(logits_generator)])
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        entropy = F.binary_cross_entropy_with_logits(logits, torch.sigmoid(logits))
        loss = bce - entcoeff * entropy
        if gradient_penalty > 0:
            if penalty_at == "expert":
                inputs = x_expert.detach().requires_grad_(True)
            else:
                mix = torch.rand(len(x_expert), 1)
                inputs = (mix * x_expert + (1 - mix) * x_generator).detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.net(inputs).sum(), inputs, create_graph=True)
            loss = loss + gradient_penalty * (grad * grad).sum(-1).mean()
        stats = {"d_loss": float(bce.detach()), "d_entropy": float(entropy.detach()),
                 "d_accuracy_expert": float((logits_expert > 0).float().mean()),
                 "d_accuracy_generator": float((logits_generator < 0).float().mean())}
        return loss, stats


def _reward(logits: torch.Tensor, form: str) -> torch.Tensor:
    return F.softplus(logits) if form == "positive" else logits
