"""imitation's GAIL on the suite's locomotion demonstrations, with imitation's own benchmark settings, beside ours.

    python benchmarks/imitation_gail.py [--task hopper-10] [--steps 1000000] [--seed 0]

Runs in a virtual environment of its own: imitation pins gymnasium 0.29, expertdata needs 1.0 or later, so this
script imports neither expertdata nor the suite; it reads our ``.npz`` with numpy (``allow_pickle=False``):

    python3.11 -m venv /tmp/imvenv && /tmp/imvenv/bin/pip install torch==2.13.0 imitation "gymnasium[mujoco]"
    /tmp/imvenv/bin/python benchmarks/imitation_gail.py --task hopper-10

The settings are imitation's ``benchmarking/example_gail_seals_hopper_best_hp_eval.json`` (PPO with its tuned
hyperparameters, 4,096 env steps a round on 8 envs, 8 discriminator updates a round, demo batch 128, a replay of
4,096 generator transitions, running-normalised reward net inputs and outputs and policy inputs), on the suite's
task (Hopper-v4 and the RL Zoo agent's 10 episodes) instead of seals/Hopper-v0; only the budget is ours (1M env
steps rather than its 10M).
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
EVAL_SEED, EVAL_EPISODES, SCORE_EVERY = 10_000, 10, 50_000
#: imitation's scripts run 8 envs (its environment ingredient's default); PPO's 4,096 steps a round are spread on them
N_ENVS = 8


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
    from imitation.policies.base import NormalizeFeaturesExtractor
    from imitation.rewards.reward_nets import BasicRewardNet, NormalizedRewardNet
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticPolicy

    torch.set_num_threads(1)
    env_id, path, random_return, expert_return = TASKS[args.task]
    rng = np.random.default_rng(args.seed)
    venv = make_vec_env(env_id, rng=rng, n_envs=N_ENVS)
    learner = PPO(ActorCriticPolicy, venv, seed=args.seed, batch_size=512, clip_range=0.1,
                  ent_coef=0.001255299425412744, gae_lambda=0.98, gamma=0.995, learning_rate=4.3984856156897565e-5,
                  max_grad_norm=0.9, n_epochs=20,
                  vf_coef=0.20315938606555833, n_steps=4096 // N_ENVS,
                  policy_kwargs=dict(activation_fn=torch.nn.ReLU, features_extractor_class=NormalizeFeaturesExtractor,
                                     features_extractor_kwargs=dict(normalize_class=RunningNorm),
                                     net_arch=dict(pi=[64, 64], vf=[64, 64])))
    reward_net = NormalizedRewardNet(BasicRewardNet(venv.observation_space, venv.action_space,
                                                    normalize_input_layer=RunningNorm), RunningNorm)
    trainer = GAIL(demonstrations=trajectories(path), demo_batch_size=128, gen_replay_buffer_capacity=4096,
                   n_disc_updates_per_round=8, venv=venv, gen_algo=learner, reward_net=reward_net,
                   allow_variable_horizon=True)
    print(f"imitation GAIL on {args.task} ({env_id}), seed {args.seed}, imitation's seals/Hopper settings", flush=True)
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
