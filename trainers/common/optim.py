"""Adam on a list of parameters through torch's functional kernel (fused where torch has it).

``torch.optim.Adam.step`` and ``zero_grad`` wrap the same kernel in enough Python to cost a quarter of a
small network's whole training step here; taking gradients with ``torch.autograd.grad`` and calling the
functional kernel skips both. The state is explicit, so checkpoints resume exactly.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch.optim.adam import adam


class Adam:
    """Adam with L2 ``weight_decay`` (as ``torch.optim.Adam``); ``step(grads)`` takes the gradients."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.params = list(params)
        self.lr, self.eps, self.weight_decay, self.betas = lr, eps, weight_decay, betas
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]
        self._fused: bool | None = None

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        kwargs = dict(amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=self.lr,
                      weight_decay=self.weight_decay, eps=self.eps, maximize=False)
        if self._fused is None:  # the fused CPU kernel needs torch 2.4 or later: try it once
            try:
                adam(self.params, list(grads), self.exp_avgs, self.exp_avg_sqs, [], self.steps, fused=True, **kwargs)
                self._fused = True
                return
            except (RuntimeError, NotImplementedError):
                self._fused = False
        adam(self.params, list(grads), self.exp_avgs, self.exp_avg_sqs, [], self.steps, fused=self._fused,
             foreach=not self._fused, **kwargs)

    def state(self) -> dict[str, torch.Tensor]:
        """Moments and step counts, by parameter position, for checkpoints."""
        out = {}
        for i, (m, v, s) in enumerate(zip(self.exp_avgs, self.exp_avg_sqs, self.steps)):
            out[f"{i}.exp_avg"], out[f"{i}.exp_avg_sq"], out[f"{i}.step"] = m, v, s
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for i in range(len(self.params)):
                self.exp_avgs[i].copy_(state[f"{i}.exp_avg"])
                self.exp_avg_sqs[i].copy_(state[f"{i}.exp_avg_sq"])
                self.steps[i].copy_(state[f"{i}.step"])
