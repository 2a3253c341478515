"""Settings measured per env by ``benchmarks/gail.py`` (docs/gail.md), to pass on top of GAILConfig's defaults.

>>> GAIL(None, "Pendulum-v1", "fixtures/pendulum.npz", **TUNED["Pendulum-v1"])  # doctest: +SKIP
"""
from __future__ import annotations

TUNED: dict[str, dict] = {
    # Pendulum's usual short horizon, and larger PPO updates (2048 steps, 30 epochs, a step size annealed to
    # 0 over the run), each followed by the discriminator's: far fewer relapses than the defaults show once
    # the expert is reached. A lighter gradient penalty sharpens the discriminator: the random-demonstration
    # control then stays near a random policy's score, and the expert is reached sooner.
    "Pendulum-v1": dict(gamma=0.9, n_steps=256, n_epochs=30, anneal_lr=True, g_step=1, gradient_penalty=0.3),
    # Twice the discriminator's updates per iteration: it then keeps the random-demonstration control from
    # learning to balance.
    "CartPole-v1": dict(d_step=64),
}
