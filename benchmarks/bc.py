"""Behaviour cloning: the targets, the wall time to reach them, and training throughput.

    python benchmarks/bc.py [--runs 3] [--skip-mpi]

- CartPole-v1 from the single-episode dataset of SB2's example (traj_limitation=1): mean return over 20
  evaluation episodes, target 475.
- Pendulum-v1 from 10 reference-expert episodes: score normalised between a uniform random policy (0%)
  and the expert (100%), both measured on the same 20 evaluation seeds (10000-10019, none used for
  recording), target 95%.
  Training stops at the first report that reaches the target; the wall time counts training only.
- Throughput in transitions/s for the field's reference configuration (batch 64, 32-32 MLP, Adam; the
  reference BC does about 30k/s here) and for our defaults, with the time split of a training step; and
  on 2 MPI ranks beside 1, in the same run.
All figures are medians over --runs runs with different seeds.
"""
from __future__ import annotations

import argparse
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from expertdata import DataLoader, ExpertDataset
from expertdata.recording.experts import pendulum
from trainers.bc import BC, BCConfig
from trainers.common.evaluation import NormalisedScore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE_TPS = 30_000


def time_to_target(env_id: str, dataset: Path, score, target: float, seed: int, traj_limitation: int = -1,
                   **config) -> dict:
    """Train until ``score(policy) >= target`` at a log record (every 10 epochs); training seconds only."""
    reached: dict = {}

    def check(record) -> bool:
        value = score(bc)
        reached.update(epoch=record.iteration, seconds=record.seconds, score=value)
        return value < target

    data = ExpertDataset(dataset, traj_limitation=traj_limitation, verbose=0, seed=seed)
    bc = BC(None, env_id, data, seed=seed, val_interval=10, **config)
    bc.learn(callback=check)
    reached["reached"] = reached["score"] >= target
    return reached


def throughput(config: dict, batch_size: int, seed: int) -> tuple[float, dict]:
    """Transitions/s of training on Pendulum with this config and batch size, and where a step's time goes."""
    from trainers.common import optim

    timers = {"data": 0.0, "backward": 0.0, "optimiser": 0.0}

    def timed(owner, name, key):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers[key] += time.perf_counter() - start
        return original, wrapper

    patches = [(DataLoader, "__next__", "data"), (torch.autograd, "grad", "backward"),
               (optim.Adam, "step", "optimiser")]
    originals = []
    for owner, name, key in patches:
        original, wrapper = timed(owner, name, key)
        originals.append((owner, name, original))
        setattr(owner, name, wrapper)
    try:
        data = ExpertDataset(FIXTURES / "pendulum.npz", batch_size=batch_size, verbose=0, seed=seed)
        bc = BC(None, "Pendulum-v1", data, seed=seed, n_epochs=150, val_interval=150, learning_rate=1e-3, **config)
        bc.learn()
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    record = bc.logs[-1]
    split = {k: v / record.seconds for k, v in timers.items()}
    split["forward and loss"] = 1 - sum(split.values())
    return record["transitions_per_second"], split


def mpi_throughput(ranks: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "expertdata", "train", "bc", str(FIXTURES / "pendulum.npz"), "--out",
                   f"{tmp}/p", "--seed", str(seed), "--n-epochs", "150", "--learning-rate", "1e-3"]
        if ranks > 1:
            command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + command
        subprocess.run(command, check=True, capture_output=True)
        return json.loads(Path(f"{tmp}/p/summary.json").read_text())["last_log"]["transitions_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-mpi", action="store_true")
    args = parser.parse_args()
    seeds = list(range(args.runs))
    report: dict = {}

    cartpole = [time_to_target("CartPole-v1", FIXTURES / "cartpole.npz", lambda bc: bc.evaluate(n_episodes=20)[0],
                               475, seed, traj_limitation=1, n_epochs=1000, learning_rate=1e-3) for seed in seeds]
    scale = NormalisedScore.measure("Pendulum-v1", pendulum, 20)

    def normalised(bc) -> float:
        return scale(bc.evaluate(n_episodes=20)[0])

    pend = [time_to_target("Pendulum-v1", FIXTURES / "pendulum.npz", normalised, 0.95, seed, n_epochs=2000,
                           learning_rate=1e-3) for seed in seeds]
    for name, runs, unit in (("CartPole-v1, 1 episode, target return 475", cartpole, "return"),
                             ("Pendulum-v1, 10 episodes, target 95% normalised", pend, "normalised")):
        print(name)
        for seed, r in zip(seeds, runs):
            print(f"  seed {seed}: {'reached' if r['reached'] else 'NOT reached'} {unit} {r['score']:.3f} "
                  f"after {r['epoch']} epochs, {r['seconds']:.2f} s of training")
        print(f"  median wall time to the target: {statistics.median(r['seconds'] for r in runs):.2f} s; "
              f"reached in {sum(r['reached'] for r in runs)} of {len(runs)} runs")
    print(f"  (Pendulum on the evaluation seeds: random policy {scale.random:.1f}, expert {scale.expert:.1f})")
    report.update(cartpole=cartpole, pendulum=pend, pendulum_random=scale.random, pendulum_expert=scale.expert)

    default_batch = inspect.signature(ExpertDataset).parameters["batch_size"].default
    for label, config, batch in (("reference config: batch 64, 32-32 MLP, Adam", {"net_arch": (32, 32)}, 64),
                                 (f"our defaults: batch {default_batch}, {BCConfig.net_arch} MLP", {}, default_batch)):
        measured = [throughput(config, batch, seed) for seed in seeds]
        tps = statistics.median(m[0] for m in measured)
        split = {k: statistics.median(m[1][k] for m in measured) for k in measured[0][1]}
        print(f"{label}: {tps:,.0f} transitions/s = {tps / REFERENCE_TPS:.1f}x the reference BC's 30k/s; "
              "time of a step: " + ", ".join(f"{k} {v:.0%}" for k, v in split.items()))
        report[label] = {"transitions_per_second": tps, "split": split}
    if not args.skip_mpi:
        one = statistics.median(mpi_throughput(1, seed) for seed in seeds)
        two = statistics.median(mpi_throughput(2, seed) for seed in seeds)
        print(f"MPI (expertdata train bc, defaults): 1 rank {one:,.0f} transitions/s, 2 ranks {two:,.0f} "
              f"transitions/s ({two / one:.2f}x)")
        report["mpi"] = {"1": one, "2": two}
    print(json.dumps(report, default=float))


if __name__ == "__main__":
    main()
