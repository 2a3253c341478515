"""Record the suite's locomotion demonstrations from RL Zoo's published PPO agents (once).

    python benchmarks/experts/zoo.py [--envs Hopper-v4,HalfCheetah-v4] [--zoo ../shared/fixtures/zoo]
                                     [--out fixtures/experts]

The agents are RL Baselines3 Zoo's ``ppo_<Env>-v3`` (Stable-Baselines3 PPO trained by the Zoo's authors, not
here), run in gymnasium's ``<Env>-v4`` (the same MuJoCo model as v3). Each was trained with ``VecNormalize``:
observations are normalised with the published ``obs_rms`` (clipped at ``clip_obs``) before ``predict``,
deterministically. 10 episodes (seeds 0-9) are recorded with ``generate_expert_traj``; only the small
demonstration files are committed (``fixtures/experts/<env>.npz``).

The Zoo publishes its statistics as a pickle naming old ``gym`` classes. This script unpickles it (a file from
a source trusted for this one purpose, never a dataset), mapping ``gym.*`` modules to ``gymnasium.*``.
"""
from __future__ import annotations

import argparse
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EPISODES = 10


class _GymAsGymnasium(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "gym" or module.startswith("gym."):
            module = "gymnasium" + module[3:]
        return super().find_class(module, name)


def zoo_expert(zoo: Path, env_id: str) -> Any:
    """``obs -> action`` of the Zoo's PPO agent for ``env_id`` (``Hopper-v4`` loads ``ppo_Hopper-v3``)."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    stem = zoo / f"ppo_{env_id.split('-')[0]}-v3"
    normaliser = _GymAsGymnasium(io.BytesIO((Path(f"{stem}_vecnormalize.pkl")).read_bytes())).load()
    env = gym.make(env_id)
    custom = {"observation_space": env.observation_space, "action_space": env.action_space,
              "learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": lambda _: 0.0}
    model = PPO.load(f"{stem}.zip", custom_objects=custom, device="cpu")
    rms, epsilon, clip = normaliser.obs_rms, float(normaliser.epsilon), float(normaliser.clip_obs)

    def act(obs: np.ndarray) -> np.ndarray:
        scaled = np.clip((obs - rms.mean) / np.sqrt(rms.var + epsilon), -clip, clip)
        return model.predict(scaled.astype(np.float32), deterministic=True)[0]

    return act


def main() -> None:
    import torch

    from expertdata.recording.recorder import generate_expert_traj

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="Hopper-v4,HalfCheetah-v4")
    parser.add_argument("--zoo", type=Path, default=ROOT.parent / "shared" / "fixtures" / "zoo")
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "experts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in args.envs.split(","):
        path = args.out / f"{env_id.split('-')[0].lower()}.npz"
        dataset = generate_expert_traj(zoo_expert(args.zoo, env_id), path, env_id, n_episodes=EPISODES, seed=0,
                                       overwrite=True)
        returns = np.asarray(dataset["episode_returns"][:])
        print(f"wrote {path}: {dataset.n_episodes} episodes, {dataset.n_transitions:,} steps, returns "
              f"{returns.min():.0f}-{returns.max():.0f} (mean {returns.mean():.0f})")


if __name__ == "__main__":
    main()
