"""imitation's GAIL on the suite's locomotion demonstrations, with imitation's own benchmark settings, beside ours.

    python benchmarks/imitation_gail.py [--task hopper-10] [--steps 1000000] [--seed 0]

Runs in a virtual environment of its own: imitation pins gymnasium 0.29, expertdata needs 1.0 or later, so this
script imports neither expertdata nor the suite; it reads our ``.npz`` with numpy (``allow_pickle=False``):

    python3.11 -m venv /tmp/imvenv && /tmp/imvenv/bin/pip install torch==2.13.0 imitation "gymnasium[mujoco]"
    /tmp/imvenv/bin/python benchmarks/imitation_gail.py --task hopper-10

The settings are imitation's own tuned ones for the task's env, read from the JSON files its package ships
(``imitation/scripts/config/tuned_hps/gail_seals_{hopper,half_cheetah}_best_hp_eval.json``: PPO's hyperparameters
and policy, its rollout size spread on 8 envs, the discriminator's updates, demo batch and replay, running-normalised
reward net inputs and outputs and policy inputs), on the suite's task (the v4 env and the RL Zoo agent's 10
episodes) instead of seals' env; only the budget is ours (1M env steps rather than its 10M).
Scores are normalised as the suite's (random policy 0, demonstrations 1, on 10 evaluation episodes, seeds from
10000), every ~50k env steps, deterministic actions.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: task -> env id, demonstrations, the suite's normalisation (random policy's and demonstrations' mean return)
TASKS = {"hopper-10": ("Hopper-v4", ROOT / "fixtures/experts/hopper.npz", 29.9, 2438.7),
         "halfcheetah-10": ("HalfCheetah-v4", ROOT / "fixtures/experts/halfcheetah.npz", -285.6, 5889.0)}
#: task -> the name of imitation's tuned settings for its env
TUNED = {"hopper-10": "gail_seals_hopper_best_hp_eval.json", "halfcheetah-10": "gail_seals_half_cheetah_best_hp_eval.json"}
EVAL_SEED, EVAL_EPISODES, SCORE_EVERY = 10_000, 10, 50_000
#: imitation's scripts run 8 envs (its environment ingredient's default); PPO's steps a round are spread on them
N_ENVS = 8


def tuned(task: str) -> dict:
    """imitation's tuned settings for the task's env, as its package ships them, classes resolved."""
    import importlib
    import importlib.resources
    import json

    def resolved(value):
        if isinstance(value, dict) and set(value) == {"py/type"}:
            module, _, name = value["py/type"].rpartition(".")
            return getattr(importlib.import_module(module), name)
        if isinstance(value, dict):
            return {k: resolved(v) for k, v in value.items()}
        return [resolved(v) for v in value] if isinstance(value, list) else value

    text = importlib.resources.files("imitation.scripts.config.tuned_hps").joinpath(TUNED[task]).read_text()
    return resolved(json.loads(text))


def trajectories(path: Path) -> list:
    """Our file's episodes as imitation's ``Trajectory`` objects (each episode's observations and its final one)."""
    from imitation.data.types import Trajectory

    with np.load(path, allow_pickle=False) as f:
        obs, actions, starts = f["obs"], f["actions"], f["episode_starts"].astype(bool)
        final, terminated = f["final_obs"], f["terminated"]
    bounds = np.r_[np.flatnonzero(starts), len(starts)]
    out = []
    for e, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        out.append(Trajectory(obs=np.concatenate([obs[a:b], final[e:e + 1]]), acts=actions[a:b], infos=None,
                              terminal=bool(terminated[b - 1])))
    return out


def score(policy, env_id: str, random_return: float, expert_return: float) -> float:
    import gymnasium as gym

    env, returns = gym.make(env_id), []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return (float(np.mean(returns)) - random_return) / (expert_return - random_return)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="hopper-10", choices=sorted(TASKS))
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.rewards.reward_nets import BasicRewardNet, NormalizedRewardNet
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticPolicy

    torch.set_num_threads(1)
    env_id, path, random_return, expert_return = TASKS[args.task]
    settings = tuned(args.task)
    policy_kwargs = dict(settings["policy"]["policy_kwargs"])
    if isinstance(policy_kwargs.get("net_arch"), list) and len(policy_kwargs["net_arch"]) == 1:
        policy_kwargs["net_arch"] = policy_kwargs["net_arch"][0]  # SB3 2's form of the same layers
    policy_cls = settings["policy"]["policy_cls"]
    rng = np.random.default_rng(args.seed)
    venv = make_vec_env(env_id, rng=rng, n_envs=N_ENVS)
    learner = PPO(ActorCriticPolicy if policy_cls == "MlpPolicy" else policy_cls, venv, seed=args.seed,
                  n_steps=settings["rl"]["batch_size"] // N_ENVS, policy_kwargs=policy_kwargs,
                  **settings["rl"]["rl_kwargs"])
    reward_net = NormalizedRewardNet(BasicRewardNet(venv.observation_space, venv.action_space,
                                                    **settings["reward"]["net_kwargs"]),
                                     settings["reward"]["normalize_output_layer"])
    trainer = GAIL(demonstrations=trajectories(path), venv=venv, gen_algo=learner, reward_net=reward_net,
                   allow_variable_horizon=True, **settings["algorithm_kwargs"])
    print(f"imitation GAIL on {args.task} ({env_id}), seed {args.seed}, imitation's {TUNED[args.task]}", flush=True)
    trained, done, first = 0.0, 0, None
    while done < args.steps:
        start = time.perf_counter()
        trainer.train(SCORE_EVERY)
        trained += time.perf_counter() - start
        done = learner.num_timesteps
        value = score(learner, env_id, random_return, expert_return)
        if value >= 0.9 and first is None:
            first = (done, trained)
        print(f"{done:,} env steps, {trained:.0f} s training: score {value:.2f} ({done / trained:.0f} env steps/s)",
              flush=True)
    print(f"final {value:.2f}; first at 0.9: " + (f"{first[0]:,} steps, {first[1]:.0f} s" if first else "never"))


if __name__ == "__main__":
    main()
