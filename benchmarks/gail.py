"""GAIL: imitation shown against two controls, steps and wall time to the targets, throughput, MPI.

    python benchmarks/gail.py [--seeds 5] [--first-seed 0] [--tasks pendulum,cartpole,cartpole-1] [--skip-mpi]
                              [--skip-out-of-core] [--skip-busy] [--quick] [--report FILE.json]
                              [--set KEY=VALUE ...] [--tuned] [--jobs 1]
                              [--arms gail,random,untrained]

Every quality figure is printed beside two controls run the same way: GAIL on demonstrations from a
uniform random policy, and GAIL whose discriminator is never trained. Scores are measured at most every
6k env steps (a whole number of iterations) on 20 deterministic evaluation episodes (seeds 10000+, never
used for recording); wall time counts training only.

Each task runs with GAILConfig's defaults (``--tuned`` starts from ``trainers.gail.TUNED``'s settings for its
env instead: the historical per-env settings, kept as a record of the screens in docs/results/gail-tuning.md);
``--set gamma=0.95`` (repeatable, values read as JSON) changes one for a screen, ``--arms gail`` runs GAIL
alone (``random`` and ``untrained`` name the controls), and ``--jobs 2`` runs seeds in parallel processes
with one torch thread each (how docs/gail.md's screens ran; wall times then differ).

- pendulum: Pendulum-v1 from the 10-episode fixture; score normalised between a random policy (0) and the
  expert (1) on the evaluation seeds; threshold 0.9 within 300k steps; after the threshold is first
  reached the score must stay at least 0.8 (no collapse).
- cartpole: CartPole-v1 from the 10-episode fixture, with the ``logit`` reward (no survival bonus);
  threshold a mean return of 475 within 100k steps.
- cartpole-1: the same from a single episode, within 300k steps.

Then throughput with the expert dataset served out of core (a Zarr copy, ``in_memory=False``) beside the
same runs in memory, seeds interleaved (goal: within 10%); with another process keeping a core busy beside
idle, for one torch thread (the default) and one per core (torch's default; goal: at least 0.4x of idle
with the default); and MPI: 2 ranks beside 1.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from seeds import over_seeds, random_demonstrations, setting

from expertdata import ExpertDataset, convert
from expertdata.recording.experts import pendulum
from trainers.common.evaluation import NormalisedScore
from trainers.gail import GAIL, TUNED

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVAL_STEPS = 6144  # scored every k iterations, the largest k that spans at most this many env steps
EVAL_EPISODES = 20  # the count for CartPole, used for Pendulum's score as well
ARMS = ("gail", "random", "untrained")
TASKS = {
    "pendulum": ("Pendulum-v1", FIXTURES / "pendulum.npz", -1, 0.9, 300_000),
    "cartpole": ("CartPole-v1", FIXTURES / "cartpole.npz", -1, 475.0, 100_000),
    "cartpole-1": ("CartPole-v1", FIXTURES / "cartpole.npz", 1, 475.0, 300_000),
}


@dataclass(frozen=True)
class Score:
    """A model's mean return over the evaluation episodes, normalised where the task has an expert's scale."""

    env_id: str
    normalised: NormalisedScore | None = None

    def __call__(self, model) -> float:
        mean = model.evaluate(self.env_id, n_episodes=EVAL_EPISODES)[0]
        return mean if self.normalised is None else self.normalised(mean)


def scorer(env_id: str) -> Score:
    if env_id != "Pendulum-v1":
        return Score(env_id)
    return Score(env_id, NormalisedScore.measure(env_id, pendulum, EVAL_EPISODES))


def run(env_id: str, dataset: Path, traj_limitation: int, config: dict, steps: int, seed: int, score,
        in_memory: bool = True, **control) -> dict:
    """One training run: the curve of (steps, training seconds, score), scored at most every ``EVAL_STEPS``
    (``score`` ``None``: no scoring)."""
    expert = ExpertDataset(dataset, traj_limitation=traj_limitation, verbose=0, seed=seed, in_memory=in_memory)
    model = GAIL(None, env_id, expert, seed=seed, **{**config, **control})
    cfg = model.config
    every = max(1, EVAL_STEPS // (cfg.g_step * cfg.n_steps * model.env.num_envs))
    curve, clock = [], {"training": 0.0, "since": time.perf_counter()}

    def callback(entry):
        if score is None or entry["iteration"] % every:
            return None
        clock["training"] += time.perf_counter() - clock["since"]
        curve.append((entry["timesteps"], clock["training"], score(model)))
        clock["since"] = time.perf_counter()
        return None

    model.learn(steps, callback=callback)
    logs = model.logs
    return {"curve": curve, "steps_per_second": statistics.median(e["steps_per_second"] for e in logs),
            "split": {k: statistics.median(e[k] for e in logs) for k in logs[-1] if k.startswith("time_")}}


def arms(text: str) -> tuple[str, ...]:
    """``gail,random,untrained`` or any part of it."""
    names = tuple(text.split(","))
    if not set(names) <= set(ARMS):
        raise argparse.ArgumentTypeError(f"arms are {','.join(ARMS)}, not {text}")
    return names


def reached(curve: list, threshold: float) -> tuple[int | None, float | None, list[float]]:
    """Steps and seconds at the first score >= threshold, and the scores from there to the end of the run
    (no collapse: they all stay at least 0.8 for a normalised score, or 80% of the threshold for a return)."""
    for i, (steps, seconds, value) in enumerate(curve):
        if value >= threshold:
            return steps, seconds, [v for _, _, v in curve[i:]]
    return None, None, []


def floor(threshold: float) -> float:
    """The score a run must not fall below once it has reached ``threshold``."""
    return 0.8 if threshold <= 1 else 0.8 * threshold


def out_of_core(steps: int, config: dict, seeds: list[int], folder: Path) -> dict:
    """Pendulum GAIL's env steps/s with the expert dataset in memory and out of core, seeds interleaved."""
    copy = convert(FIXTURES / "pendulum.npz", folder / "pendulum.zarr", overwrite=True).path
    measured: dict[str, list[float]] = {"in memory": [], "out of core": []}
    for seed in seeds:
        for name, path, in_memory in (("in memory", FIXTURES / "pendulum.npz", True), ("out of core", copy, False)):
            result = run("Pendulum-v1", path, -1, config, steps, seed, None, in_memory=in_memory)
            measured[name].append(result["steps_per_second"])
    return {name: statistics.median(values) for name, values in measured.items()}


def busy_core(steps: int, config: dict, seeds: list[int]) -> dict:
    """Pendulum GAIL's env steps/s idle and with another process keeping a core busy, with the default
    threads (one torch thread for MLPs) and with as many torch threads as cores (torch's own default)."""
    measured = {}
    for threads in (None, os.cpu_count()):
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                runs = [run("Pendulum-v1", FIXTURES / "pendulum.npz", -1, {**config, "torch_threads": threads},
                            steps, seed, None) for seed in seeds]
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            measured[threads or 1, busy] = statistics.median(r["steps_per_second"] for r in runs)
    return measured


def cli_options(config: dict) -> list[str]:
    """GAILConfig settings as ``expertdata train gail`` options."""
    out = []
    for key, value in config.items():
        name = key.replace("_", "-")
        if isinstance(value, bool):
            out.append(f"--{name}" if value else f"--no-{name}")
        else:
            out += [f"--{name}", ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return out


def mpi_run(ranks: int, steps: int, config: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "expertdata", "train", "gail", str(FIXTURES / "pendulum.npz"), "--env",
                   "Pendulum-v1", "--out", f"{tmp}/m", "--seed", "0", "--steps", str(steps)]
        command += cli_options(config)
        if ranks > 1:
            command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + command
        subprocess.run(command, check=True, capture_output=True)
        rows = Path(f"{tmp}/m/log.csv").read_text().splitlines()
        header = rows[0].split(",")
        logs = [dict(zip(header, r.split(","))) for r in rows[1:]]
        return {"steps_per_second": statistics.median(float(e["steps_per_second"]) for e in logs),
                "curve": [(int(e["timesteps"]), e["env_return"]) for e in logs]}


def settings(env_id: str, args: argparse.Namespace) -> dict:
    """GAILConfig's defaults (or TUNED's for the env, with ``--tuned``), with the ``--set`` changes."""
    return {**(TUNED.get(env_id, {}) if args.tuned else {}), **dict(args.set)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--tasks", default="pendulum,cartpole,cartpole-1")
    parser.add_argument("--quick", action="store_true", help="a third of the steps, for a look")
    parser.add_argument("--skip-mpi", action="store_true")
    parser.add_argument("--skip-out-of-core", action="store_true")
    parser.add_argument("--skip-busy", action="store_true", help="skip throughput with another core kept busy")
    parser.add_argument("--report", type=Path, help="also write every run's curve and figures to this JSON file")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE",
                        help="change one GAILConfig field for every run")
    parser.add_argument("--tuned", action="store_true", help="start from TUNED's settings for each env (historical)")
    parser.add_argument("--arms", type=arms, default=ARMS, help="GAIL and the controls to run, comma-separated")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel, one torch thread each")
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in filter(None, args.tasks.split(",")):
            env_id, dataset, limit, threshold, steps = TASKS[task]
            config = settings(env_id, args)
            steps = steps // 3 if args.quick else steps
            score = scorer(env_id)
            controls = {}
            if "gail" in args.arms:
                controls["gail"] = (dataset, limit, {})
            if "random" in args.arms:
                controls["random demonstrations"] = (random_demonstrations(env_id, Path(tmp)), -1, {})
            if "untrained" in args.arms:
                controls["untrained discriminator"] = (dataset, limit, {"train_discriminator": False})
            print(f"{task}: {env_id}, {config}, threshold {threshold}, {steps} steps, seeds {seeds[0]}-{seeds[-1]}")
            report[task] = {}
            for name, (data, traj_limitation, control) in controls.items():
                runs = over_seeds(run, seeds, args.jobs, env_id=env_id, dataset=data,
                                  traj_limitation=traj_limitation, config=config, steps=steps, score=score, **control)
                hits = [reached(r["curve"], threshold) for r in runs]
                finals = [r["curve"][-1][2] for r in runs]
                best = [max(v for _, _, v in r["curve"]) for r in runs]
                steady = sum(h[0] is not None and min(h[2]) >= floor(threshold) for h in hits)
                print(f"  {name}: reached in {sum(h[0] is not None for h in hits)}/{len(hits)} seeds, "
                      f"without a later collapse in {steady}; "
                      f"final score median {statistics.median(finals):.3f}, best median {statistics.median(best):.3f}, "
                      f"highest {max(best):.3f}")
                for seed, hit, r in zip(seeds, hits, runs):
                    below = sum(v < floor(threshold) for v in hit[2])
                    where = (f"at {hit[0]} steps, {hit[1]:.1f} s, then lowest {min(hit[2]):.2f}, "
                             f"{below}/{len(hit[2])} later scores below {floor(threshold):g}"
                             if hit[0] is not None else "not reached")
                    print(f"    seed {seed}: {where}; curve " +
                          " ".join(f"{s // 1000}k:{v:.2f}" for s, _, v in r["curve"][::max(1, len(r['curve']) // 12)]))
                if name == "gail":
                    sps = statistics.median(r["steps_per_second"] for r in runs)
                    split = {k: statistics.median(r["split"][k] for r in runs) for k in runs[0]["split"]}
                    print(f"  throughput: {sps:,.0f} env steps/s ({sps / 2200:.1f}x the reference's 2.2k/s); time: " +
                          ", ".join(f"{k[5:]} {v:.0%}" for k, v in split.items()))
                report[task][name] = {"hits": hits, "finals": finals, "runs": runs}
        if not args.skip_out_of_core:
            steps = 10_000 if args.quick else 30_000
            config = settings("Pendulum-v1", args)
            result = out_of_core(steps, config, seeds, Path(tmp))
            ratio = result["out of core"] / result["in memory"]
            print(f"out of core, Pendulum GAIL, {steps} steps, medians over seeds: in memory "
                  f"{result['in memory']:,.0f} env steps/s, out of core {result['out of core']:,.0f} ({ratio:.2f}x)")
            report["out_of_core"] = result
    if not args.skip_busy:
        steps = 6_000 if args.quick else 20_000
        busy = busy_core(steps, settings("Pendulum-v1", args), seeds[:3])
        for threads in sorted({t for t, _ in busy}):
            idle, loaded = busy[threads, False], busy[threads, True]
            print(f"busy core, Pendulum GAIL, {steps} steps, {threads} torch thread{'s' * (threads > 1)}: idle "
                  f"{idle:,.0f} env steps/s, another core busy {loaded:,.0f} ({loaded / idle:.2f}x)")
        report["busy"] = {f"{t} threads, {'busy' if b else 'idle'}": v for (t, b), v in busy.items()}
    if not args.skip_mpi:
        steps = 30_000 if args.quick else 100_000
        config = settings("Pendulum-v1", args)
        one, two = mpi_run(1, steps, config), mpi_run(2, steps, config)
        print(f"MPI, Pendulum GAIL, {steps} steps: 1 rank {one['steps_per_second']:,.0f} env steps/s, 2 ranks "
              f"{two['steps_per_second']:,.0f} env steps/s")
        for name, result in (("1 rank", one), ("2 ranks", two)):
            shown = result["curve"][::max(1, len(result["curve"]) // 10)]
            print(f"  {name} env return by steps: " + " ".join(f"{s // 1000}k:{float(r):.0f}" for s, r in shown if r))
        report["mpi"] = {"1": one, "2": two}
    if args.report is not None:
        args.report.write_text(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
