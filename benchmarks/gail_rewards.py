"""What GAIL's generator is paid, beside its score: one run of a suite task, one seed (issue 29's diagnosis).

    python benchmarks/gail_rewards.py hopper-10 [--seed 0] [--noise] [--set KEY=VALUE ...]

At every evaluation of ``benchmarks/suite.py`` (same task, seed, budget and scoring), it prints the score and, over
the last iteration's rollouts, the mean and the lowest learned reward per step, the reward the absorbing state is
paid (``absorbing_reward`` may lower the discriminator's) and the discriminator's own. A policy learns to end its
episodes where the absorbing state pays more than the steps it takes alive. ``--noise`` adds the score of the policy's
sampled actions, its std (Box actions: the lowest and highest over the action's components) and the discriminator's
accuracy on the expert's and the generator's transitions in the last iteration: how far the generator's action noise
alone tells it apart. The sampled actions are drawn from torch's random stream, so with ``--noise`` the run leaves the
suite's after its first evaluation.
"""
from __future__ import annotations

import argparse

import numpy as np
from seeds import setting
from suite import TASKS, gail_model, scale, scored

from trainers.common.evaluation import episode_returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", action="store_true", help="also the sampled actions' score, the std, D's accuracy")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    task = TASKS[args.task]
    score = scale(task, task.path)
    model = gail_model(task, task.path, task.episodes, args.seed, **dict(args.set))
    paid: list[tuple[float, float, float]] = []
    value_of = model._absorbing_value

    def watched(learned: np.ndarray) -> float:
        value = value_of(learned)
        paid.append((float(np.mean(learned)), float(np.min(learned)), value * (1 - model.config.gamma)))
        return value

    model._absorbing_value = watched
    print("env steps  score  mean reward  lowest reward  absorbing paid  absorbing (D)"
          + ("  sampled  std        D: expert  generator" if args.noise else ""))
    policy = model.model.policy
    for steps, _, now in scored(model, task, score, task.gail_steps):
        mean, lowest, absorbing = np.mean(paid[-model.config.g_step:], axis=0)
        paid.clear()
        line = (f"{steps:9,d}  {now:5.2f}  {mean:11.2f}  {lowest:13.2f}  {absorbing:14.2f}  "
                f"{model.logs[-1]['absorbing_reward']:13.2f}")
        if args.noise:
            sampled = score(episode_returns(lambda obs: policy.predict(obs, deterministic=False)[0], task.env_id,
                                            task.eval_episodes).mean())
            std = np.exp(policy.head.log_std.detach().numpy()) if hasattr(policy.head, "log_std") else np.full(1, np.nan)
            line += (f"  {sampled:7.2f}  {std.min():.2f}-{std.max():.2f}  {model.logs[-1]['d_accuracy_expert']:9.2f}  "
                     f"{model.logs[-1]['d_accuracy_generator']:9.2f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
