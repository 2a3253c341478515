"""GAIL with SB2's interface, on torch and gymnasium: a PPO generator rewarded by a discriminator that
tells expert transitions from the generator's.

One iteration: ``g_step`` times, a rollout of ``n_steps`` on every env, rewarded by the discriminator,
then a PPO update; then ``d_step`` discriminator updates on the last rollout's transitions against as many
expert transitions (SB2's scheme). Envs are reset (with seeds derived from the iteration) at every
checkpoint, so a run resumed from a checkpoint continues exactly as the uninterrupted run does.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from expertdata import TrainingData, UnreadableError, UsageError, World, atomic, observations, spaces

from ..common.cloning import History, fit, pretrain
from ..common.configs import CloningConfig
from ..common.data import as_training_data, training_spaces
from ..common.evaluation import EVAL_SEED
from ..common.log_table import LogTable
from ..common.optim import Adam
from ..common.policy import Policy, check_spaces, env_spaces
from ..common.running_stats import RunningMeanStd
from ..common.threads import threads_for, torch_threads
from ..protocol import Callback, LogRecord
from .config import GAILConfig
from .discriminator import Discriminator
from .ppo import ActorCritic, Rollout, gae, ppo_update
from .td3 import TD3, Replay

STATE_FILE = "gail.json"
#: What ``verbose`` prints of each log record (``log.csv`` and ``logs`` keep everything).
TABLE = {"iteration": "iteration", "timesteps": "env steps", "env_return": "env return",
         "d_accuracy_expert": "D acc expert", "d_accuracy_generator": "D acc gen", "d_loss": "D loss",
         "approx_kl": "KL", "steps_per_second": "steps/s"}
POLICY_NAMES = ("MlpPolicy", "CnnPolicy")


def _vector_env(env: Any, n_envs: int) -> Any:
    """A sync vector env in SAME_STEP autoreset mode from an env id, an env, or a vector env."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from expertdata import envs

    if isinstance(env, str):
        return envs.make_vec(env, n_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    if hasattr(env, "num_envs"):
        if env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise UsageError("GAIL needs a vector env in SAME_STEP autoreset mode (gymnasium.make_vec(..., "
                             "vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP})), or an env id")
        return env
    return SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.SAME_STEP)


class GAIL:
    """Generative adversarial imitation learning (SB2's ``GAIL``), with a PPO generator, and the shape every
    trainer has (``trainers.protocol.Trainer``).

    :param policy: ``"MlpPolicy"``/``"CnnPolicy"``/``None`` (the network follows the observation space), or
        a ``Policy`` to start from (a behaviour-cloned one, say).
    :param env: an env id, a gymnasium env, or a vector env in SAME_STEP autoreset mode.
    :param expert_dataset: an ``ExpertDataset`` (any ``TrainingData``, in memory or out of core), or a path in
        any format.
    :param config: a ``GAILConfig``; else SB2's parameters and ``generator_kwargs`` (any other ``GAILConfig``
        field: ``n_envs``, ``reward``, ``learning_rate``, ...) make one.
    :param check: refuse, before training, a dataset that breaks the format's rules or holds no transition.
    """

    def __init__(self, policy: Any, env: Any, expert_dataset: TrainingData | str | Path | None,
                 hidden_size_adversary: int = 100, adversary_entcoeff: float = 0.001, g_step: int = 3,
                 d_step: int = 32, d_stepsize: float = 1e-3, verbose: int = 0, seed: int | None = None, *,
                 config: GAILConfig | None = None, check: bool = True, **generator_kwargs: Any) -> None:
        if policy is not None and not isinstance(policy, Policy) and policy not in POLICY_NAMES:
            raise UsageError(f"policy must be None, {' or '.join(POLICY_NAMES)} or a Policy, not {policy!r}")
        self.config = config or GAILConfig(hidden_size_adversary=hidden_size_adversary,
                                           adversary_entcoeff=adversary_entcoeff, g_step=g_step, d_step=d_step,
                                           d_stepsize=d_stepsize, seed=seed, **generator_kwargs)
        self.verbose, self.world = verbose, World()
        self.env: Any = None
        self._eval_env: Any = None  # what evaluate() uses by default: the env id, or a single env, of set_env
        self.num_timesteps, self.iteration = 0, 0
        self.d_accuracy: float | None = None  # the last iteration's balanced accuracy, for kl_accuracy_scale
        self.logs: list[LogRecord] = []
        self.set_random_seed(self.config.seed)
        self.expert_dataset = as_training_data(expert_dataset, self.config.seed)
        given = (policy.observation_space, policy.action_space) if isinstance(policy, Policy) else None
        spaces_ = training_spaces(self.expert_dataset, env, given, check)
        self.config = self.config.resolved_for(spaces_[1])
        off_policy = self.generator == "td3"
        self.model = ActorCritic(*spaces_, self.config.td3_net_arch if off_policy else self.config.net_arch,
                                 "relu" if off_policy else "tanh")
        if isinstance(policy, Policy):
            self.model.policy = policy
        elif hasattr(self.model.policy.head, "log_std") and not off_policy:
            torch.nn.init.constant_(self.model.policy.head.log_std, self.config.log_std_init)
        #: the off-policy generator's networks and every transition so far (``generator="td3"``), else None
        self.td3 = TD3(self.model.policy, self.config.td3_net_arch, self.config.td3_learning_rate) if off_policy \
            else None
        self.transitions = Replay(self.config.buffer_size) if off_policy else None
        self.discriminator = Discriminator(*spaces_, self.config.hidden_size_adversary)
        self.world.broadcast(self.model)
        self.world.broadcast(self.discriminator)
        self.g_params = [p for p in self.model.parameters() if p.requires_grad]
        self.d_params = list(self.discriminator.parameters())
        self.g_optimizer = Adam(self.g_params, self.config.learning_rate, 1e-5)
        self.d_optimizer = Adam(self.d_params, self.config.d_stepsize)
        size = sum(int(np.prod(spaces.row_shape(leaf), dtype=np.int64)) for leaf in spaces.leaves(spaces_[0]).values())
        self.obs_stats, self.d_obs_stats, self.return_stats = RunningMeanStd((size,)), RunningMeanStd((size,)), \
            RunningMeanStd()
        self.replay: deque[tuple[Any, np.ndarray, int]] = deque(maxlen=self.config.discriminator_replay)
        #: this rank's generator transitions and terminations over every rollout so far
        self.generator_ends = np.zeros(2, np.int64)
        self._absorbing_share: float | None = None
        self._terminal_episodes: int | None = None
        cfg = self.config
        if self.expert_dataset is not None and cfg.normalize_obs and (cfg.obs_normalization == "expert" or off_policy):
            self._observation_stats_from(self.expert_dataset)
        if self.expert_dataset is not None and cfg.normalize_obs and cfg.d_obs_normalization == "expert":
            mean, std = self.expert_dataset.observation_stats()
            self.d_obs_stats.load_state({"mean": mean, "var": std**2, "count": np.array(1.0)})
            self.discriminator.set_observation_stats(self.d_obs_stats.mean, self.d_obs_stats.std)
        if env is not None:
            self.set_env(env)

    # -- set-up ---------------------------------------------------------------------------------------

    def _observation_stats_from(self, dataset: TrainingData) -> None:
        """Set the policy's and critic's observation statistics to the dataset's (where running statistics
        are kept, they start from there, weighted by the dataset's size)."""
        mean, std = dataset.observation_stats()
        self.obs_stats.load_state({"mean": mean, "var": std**2, "count": np.array(float(dataset.split_size("all")))})
        self.model.set_observation_stats(self.obs_stats.mean, self.obs_stats.std)
        if self.td3 is not None:
            self.td3.set_observation_stats(self.obs_stats.mean, self.obs_stats.std)

    def set_random_seed(self, seed: int | None) -> None:
        """Seed torch and the trainer's own generator (expert batches, minibatch order)."""
        if seed is not None:
            torch.manual_seed(seed + 7919 * self.world.rank)
        self.rng = np.random.default_rng(None if seed is None else [seed, self.world.rank])

    @property
    def generator(self) -> str:
        """The generator this model trains, ``ppo`` or ``td3`` (``generator="auto"`` decided for its action space)."""
        return self.config.generator

    def get_env(self) -> Any:
        return self.env

    def set_env(self, env: Any) -> None:
        """Use ``env`` from now on (its spaces must be the policy's)."""
        check_spaces((self.model.policy.observation_space, self.model.policy.action_space), env_spaces(env),
                     "the model", "the env")
        self.env = _vector_env(env, self.config.n_envs)
        self._eval_env = env if isinstance(env, str) or not hasattr(env, "num_envs") else getattr(env.spec, "id", None)
        self._reset_envs()

    def _reset_envs(self) -> None:
        seed = self.config.seed
        base = None if seed is None else seed + 1000 * self.world.rank + 100_003 * self.iteration
        n = self.env.num_envs
        obs, _ = self.env.reset(seed=None if base is None else [base + i for i in range(n)])
        self._obs = self._by_leaf(obs)
        self._episode_returns = np.zeros(n)
        self._returns_running = np.zeros(n)
        self._finished: list[float] = []

    def _by_leaf(self, obs: Any) -> Any:
        """The env's observations as the networks take them: an array, or for a composite space a dict of
        arrays by leaf path."""
        space = self.model.policy.observation_space
        return spaces.flatten(space, obs) if spaces.is_composite(space) else obs

    # -- learning ---------------------------------------------------------------------------------------

    def _collect(self, timers: dict[str, float]) -> Rollout:
        cfg, n = self.config, self.env.num_envs
        leaves = spaces.leaves(self.model.policy.observation_space)  # a Discrete value's row is (1,), as stored
        now = self._obs if isinstance(self._obs, dict) else {"": self._obs}
        buffers = {path: np.empty((cfg.n_steps, n) + spaces.row_shape(leaf), now[path].dtype)
                   for path, leaf in leaves.items()}
        buf_obs = buffers if isinstance(self._obs, dict) else buffers[""]
        buf_act = buf_logp = buf_val = None
        dones, env_rewards = np.zeros((cfg.n_steps, n)), np.zeros((cfg.n_steps, n))
        terminal, bootstrap = np.zeros((cfg.n_steps, n)), np.zeros((cfg.n_steps, n))
        discrete = self.model.policy.action_space["type"] == "Discrete"
        for t in range(cfg.n_steps):
            start = time.perf_counter()
            actions, logp, values = self.model.act(self._obs)
            if buf_act is None:
                buf_act = np.empty((cfg.n_steps,) + actions.shape, dtype=actions.dtype)
                buf_logp, buf_val = np.empty((cfg.n_steps, n), np.float32), np.empty((cfg.n_steps, n), np.float32)
            next_obs, rewards, terminated, truncated, infos = self.env.step(actions.reshape(n) if discrete else actions)
            for buffer, now in zip(observations.leaves(buf_obs), observations.leaves(self._obs)):
                buffer[t] = now.reshape(buffer.shape[1:])
            buf_act[t], buf_logp[t], buf_val[t] = actions, logp, values
            dones[t], terminal[t], env_rewards[t] = np.logical_or(terminated, truncated), terminated, rewards
            self._episode_returns += rewards
            cut = np.flatnonzero(truncated & ~terminated)
            if len(cut):
                final = [self._by_leaf(infos["final_obs"][i]) for i in cut]
                final = ({path: np.stack([f[path] for f in final]) for path in final[0]} if isinstance(final[0], dict)
                         else np.stack(final))
                with torch.no_grad():
                    bootstrap[t, cut] = cfg.gamma * self.model.value(final).numpy()
            for i in np.flatnonzero(dones[t]):
                self._finished.append(float(self._episode_returns[i]))
                self._episode_returns[i] = 0.0
            self._obs = self._by_leaf(next_obs)
            timers["env"] += time.perf_counter() - start
        with torch.no_grad():
            last = self.model.value(self._obs).numpy()
        return Rollout(buf_obs, buf_act, buf_logp, buf_val, env_rewards, dones, terminal, bootstrap, last)

    def _learned_rewards(self, rollout: Rollout) -> np.ndarray:
        """The discriminator's rewards (scaled with ``normalize_reward``); with ``absorbing``, a terminal step
        also earns the discounted value of the absorbing state that follows it."""
        cfg = self.config
        obs, act = observations.apply(torch.as_tensor, rollout.flat("obs")), torch.as_tensor(rollout.flat("actions"))
        rewards = self.discriminator.reward(obs, act, cfg.reward).numpy().reshape(rollout.dones.shape)
        self._last_mean_reward = float(rewards.mean())
        scale = 1.0
        if cfg.normalize_reward:
            discounted = np.empty_like(rewards)
            for t in range(len(rewards)):
                self._returns_running = self._returns_running * cfg.gamma + rewards[t]
                discounted[t] = self._returns_running
                self._returns_running[rollout.dones[t] > 0] = 0.0
            self.return_stats.update(discounted.reshape(-1), self.world)
            # The bootstrap is a value of the scaled rewards already; only the learned rewards are scaled here.
            scale = self.return_stats.std
        if cfg.absorbing:
            rewards = rewards + rollout.terminated * cfg.gamma * self._absorbing_value(rewards)
        return rewards / scale

    def _absorbing_value(self, learned: np.ndarray | torch.Tensor) -> float:
        """The value of the absorbing state, where each step pays r for ever: ``r / (1 - gamma)``, where r is
        the discriminator's reward for it; with ``absorbing_reward="lowest"`` where ending is failure
        (``_ending_fails``), r is at most the lowest of ``learned`` (the rewards of the transitions it is paid
        beside), so that ending an episode never pays more than any step the generator takes alive."""
        cfg = self.config
        reward = self.discriminator.absorbing_reward(cfg.reward)
        if cfg.absorbing_reward == "lowest" and len(learned) and self._ending_fails():
            reward = min(reward, float(learned.min()))
        return reward / (1.0 - cfg.gamma)

    def _ending_fails(self) -> bool:
        """Whether most of the expert's episodes run until they are cut (by the time limit): there, an episode that
        terminates has failed (a demonstrator that falls once in a while included); where most terminate, ending is
        the task (MountainCar's flag)."""
        return 2 * self._expert_terminal_episodes() < self.expert_dataset.num_traj

    def _expert_terminal_episodes(self) -> int:
        """How many of the expert's kept episodes terminated (read once, as ``TrainingData.terminal_episodes``
        documents)."""
        if self._terminal_episodes is None:
            self._terminal_episodes = self.expert_dataset.terminal_episodes(self._time_limit())
        return self._terminal_episodes

    def _expert_absorbing_share(self) -> float:
        """The share of absorbing states among the expert's: one per episode that terminated, beside its
        transitions."""
        if self._absorbing_share is None:
            terminal = self._expert_terminal_episodes()
            transitions = float(self.world.sum(np.array([float(self.expert_dataset.split_size("all"))]))[0])
            self._absorbing_share = terminal / (transitions + terminal) if transitions + terminal else 0.0
        return self._absorbing_share

    def _time_limit(self) -> int | None:
        spec = getattr(self.env, "spec", None) or getattr(getattr(self.env, "envs", [None])[0], "spec", None)
        return getattr(spec, "max_episode_steps", None)

    def _expert_batch(self, size: int) -> tuple[Any, torch.Tensor]:
        obs, actions = self.expert_dataset.sample(size, self.rng)
        return observations.apply(torch.as_tensor, obs), torch.as_tensor(actions)

    def _train_discriminator(self, rollout: Rollout) -> dict[str, float]:
        """``d_step`` updates, on as many generator transitions as the last rollout holds, drawn from the
        latest ``discriminator_replay`` rollouts, each against as many expert transitions.

        Each side's batch holds absorbing states in the share its episodes reach them: the expert's from the
        dataset; the generator's from the replayed rollouts, or, where the expert never terminates, over
        every rollout so far (as DAC's replay of every transition holds them). Else a generator that no
        longer terminates leaves the absorbing state in no batch: its reward drifts, and a termination, paid
        it for ever after, soon pays more than surviving (InvertedDoublePendulum's policies fell at once
        after reaching the expert). Where the expert terminates, its own absorbing states keep it trained."""
        cfg = self.config
        terminals = int(rollout.terminated.sum()) if cfg.absorbing else 0
        self.replay.append((rollout.flat("obs"), rollout.flat("actions"), terminals))
        self.generator_ends += (rollout.terminated.size, terminals)
        obs = observations.concatenate([o for o, *_ in self.replay])
        act = np.concatenate([a for _, a, _ in self.replay])
        order = self.rng.permutation(len(act))
        size = max(1, len(self.replay[-1][1]) // cfg.d_step)
        expert_share = self._expert_absorbing_share() if cfg.absorbing else 0.0
        replayed = sum(n for *_, n in self.replay)
        share = (replayed / (len(act) + replayed) if expert_share else
                 self.generator_ends[1] / self.generator_ends.sum())

        def draw(k: int, n: int) -> tuple[Any, np.ndarray]:
            rows = order[k * size:k * size + n]
            return observations.apply(lambda a: a[rows], obs), act[rows]

        return self._discriminator_updates(draw, size, (expert_share, share))

    def _discriminator_updates(self, draw: Any, size: int, shares: tuple[float, float]) -> dict[str, float]:
        """``d_step`` discriminator updates of ``size`` rows a side: generator rows from ``draw(k, n)``, expert rows
        sampled, each side with absorbing states in its share (``shares``: the expert's, the generator's)."""
        cfg = self.config
        totals: dict[str, float] = {}
        for k in range(cfg.d_step):
            # at least one transition on each side, so that neither batch is absorbing states alone
            absorbing = tuple(min(size - 1, int(self.rng.binomial(size, share))) for share in shares)
            expert = self._expert_batch(size - absorbing[0])
            gen_obs, gen_act = draw(k, size - absorbing[1])
            generator = (observations.apply(torch.as_tensor, gen_obs), torch.as_tensor(gen_act))
            if cfg.normalize_obs and cfg.d_obs_normalization == "running":
                both = [observations.flat(observations.apply(lambda t: t.numpy(), side[0]))
                        for side in (expert, generator)]
                self.d_obs_stats.update(np.concatenate(both), self.world)
                self.discriminator.set_observation_stats(self.d_obs_stats.mean, self.d_obs_stats.std)
            loss, stats = self.discriminator.loss(expert, generator, cfg.adversary_entcoeff, cfg.gradient_penalty,
                                                  absorbing, cfg.gradient_penalty_at)
            if cfg.train_discriminator:
                self.d_optimizer.step(self.world.average(torch.autograd.grad(loss, self.d_params)))
            totals = {name: totals.get(name, 0.0) + value for name, value in stats.items()}
        return {name: value / cfg.d_step for name, value in totals.items()}

    def _update_config(self) -> GAILConfig:
        """The config of this iteration's PPO update: ``target_kl`` scaled by the discriminator's last
        accuracy with ``kl_accuracy_scale``."""
        cfg = self.config
        if cfg.kl_accuracy_scale <= 0 or cfg.target_kl is None or self.d_accuracy is None:
            return cfg
        scale = min(1.0, max(0.0, (self.d_accuracy - 0.5) / cfg.kl_accuracy_scale))
        return dataclasses.replace(cfg, target_kl=cfg.target_kl * scale)

    def learn(self, total_timesteps: int, callback: Callback | None = None, log_interval: int = 100,
              reset_num_timesteps: bool = True, progress: bool = False) -> "GAIL":
        """Train ``total_timesteps`` more env steps (over every rank), in whole iterations; SB2's semantics.

        :param callback: called with each iteration's log record; returning a false value other than
            ``None`` stops training.
        :param log_interval: iterations between printed log lines (with ``verbose``); every iteration is
            kept in ``logs``.
        :param reset_num_timesteps: start the ``num_timesteps`` count from 0; ``False`` continues it (a run
            resumed from a checkpoint, whose folders are named by it).
        """
        from tqdm.auto import tqdm

        if self.env is None or self.expert_dataset is None:
            raise UsageError("learn needs an env and an expert dataset (set_env, or load(..., env=, expert_dataset=))")
        if total_timesteps < 1:
            raise UsageError(f"total_timesteps must be at least 1, not {total_timesteps}")
        cfg = self.config
        if reset_num_timesteps:
            self.num_timesteps = 0
        per_iteration = cfg.g_step * cfg.n_steps * self.env.num_envs * self.world.size
        done, begun = 0, time.perf_counter()
        table = LogTable(TABLE, log_interval) if self.verbose and self.world.is_root else None
        threads = threads_for(self.model.policy.features, cfg.torch_threads)
        with torch_threads(threads), tqdm(total=total_timesteps, unit="step", desc="gail",
                                          disable=None if progress and self.world.is_root else True) as bar:
            while done < total_timesteps:
                if cfg.anneal_lr:
                    self.g_optimizer.lr = cfg.learning_rate * max(0.0, 1.0 - done / total_timesteps)
                values = self._iterate(per_iteration)
                bar.update(min(per_iteration, total_timesteps - done))
                done += per_iteration
                record = LogRecord(self.iteration, self.num_timesteps, time.perf_counter() - begun, values)
                self.logs.append(record)
                if table is not None:
                    table.add(record)
                if cfg.checkpoint_interval and self.iteration % cfg.checkpoint_interval == 0:
                    if cfg.checkpoint_dir is not None and self.world.is_root:
                        self.save(Path(cfg.checkpoint_dir) / f"{self.num_timesteps:09d}")
                    self._reset_envs()
                if callback is not None:
                    answer = callback(record)
                    if answer is not None and not answer:
                        break
        if table is not None:
            table.finish()
        return self

    def _iterate(self, per_iteration: int) -> dict[str, Any]:
        """One iteration: ``g_step`` rollouts and PPO updates, then the discriminator's updates (or, with the
        off-policy generator, ``_iterate_td3``); returns what it logs."""
        if self.td3 is not None:
            return self._iterate_td3(per_iteration)
        cfg = self.config
        timers = dict.fromkeys(("env", "policy update", "discriminator update", "rewards and data"), 0.0)
        start = time.perf_counter()
        update_config = self._update_config()
        for _ in range(cfg.g_step):
            rollout = self._collect(timers)
            mark = time.perf_counter()
            rewards = self._learned_rewards(rollout)
            advantages, returns = gae(rewards, rollout, cfg.gamma, cfg.gae_lambda)
            timers["rewards and data"] += time.perf_counter() - mark
            mark = time.perf_counter()
            g_stats = ppo_update(self.model, self.g_optimizer, self.g_params, rollout, advantages, returns,
                                 update_config, self.rng, self.world)
            timers["policy update"] += time.perf_counter() - mark
            if cfg.normalize_obs and cfg.obs_normalization == "running":
                self.obs_stats.update(observations.flat(rollout.flat("obs")), self.world)
                self.model.set_observation_stats(self.obs_stats.mean, self.obs_stats.std)
        mark = time.perf_counter()
        d_stats = self._train_discriminator(rollout)
        accuracy = 0.5 * (d_stats["d_accuracy_expert"] + d_stats["d_accuracy_generator"])
        self.d_accuracy = float(self.world.sum(np.array([accuracy]))[0]) / self.world.size  # same on every rank
        timers["discriminator update"] += time.perf_counter() - mark
        self.iteration += 1
        self.num_timesteps += per_iteration
        seconds = time.perf_counter() - start
        finished = self.world.sum(np.array([sum(self._finished), len(self._finished)]))
        self._finished = []
        absorbing = self.discriminator.absorbing_reward(cfg.reward) if cfg.absorbing else None
        return {**d_stats, "mean_learned_reward": self._last_mean_reward, "absorbing_reward": absorbing,
                "env_return": float(finished[0] / finished[1]) if finished[1] else None,
                "steps_per_second": per_iteration / seconds,
                **{f"time_{k.replace(' ', '_')}": v / seconds for k, v in timers.items()}, **g_stats}

    def _iterate_td3(self, per_iteration: int) -> dict[str, Any]:
        """One iteration of the off-policy generator: ``g_step * n_steps`` steps of every env (random actions for
        the first ``learning_starts`` steps, then the actor's with exploration noise), each followed by one TD3
        update per env on replayed transitions rewarded by the discriminator now; then ``d_step`` discriminator
        updates on replayed transitions against the expert's."""
        cfg, td3, replay = self.config, self.td3, self.transitions
        timers = dict.fromkeys(("env", "policy update", "discriminator update", "rewards and data"), 0.0)
        start, n = time.perf_counter(), self.env.num_envs
        if self.iteration == 0 and cfg.warm_start and not td3.updates:
            self._warm_start()
            timers["policy update"] += time.perf_counter() - start
        head = self.model.policy.head
        totals: dict[str, float] = {}
        updates = 0
        absorbing_value = 0.0
        for _ in range(cfg.g_step * cfg.n_steps):
            mark = time.perf_counter()
            if replay.size < cfg.learning_starts and not cfg.warm_start:
                low, high = (t.numpy() for t in (head.low, head.high))
                actions = self.rng.uniform(np.where(np.isfinite(low), low, -1), np.where(np.isfinite(high), high, 1),
                                           (n,) + tuple(head.shape)).astype(np.float32)
            else:
                actions = td3.explore(self._obs, cfg.exploration_noise)
            next_obs, rewards, terminated, truncated, infos = self.env.step(actions)
            following = self._by_leaf(next_obs)
            cut = np.flatnonzero(truncated | terminated)
            if len(cut):  # the episode's own last observation, not the next episode's first
                following = observations.apply(np.copy, following)
                for i in cut:
                    final = self._by_leaf(infos["final_obs"][i])
                    for leaf, value in zip(observations.leaves(following), observations.leaves(final)):
                        leaf[i] = value
            replay.add(self._obs, actions, following, terminated & cfg.absorbing)
            self._episode_returns += rewards
            for i in cut:
                self._finished.append(float(self._episode_returns[i]))
                self._episode_returns[i] = 0.0
            self._obs = self._by_leaf(next_obs)
            timers["env"] += time.perf_counter() - mark
            if replay.size < cfg.learning_starts:
                continue
            mark = time.perf_counter()
            for _ in range(n):
                batch = replay.sample(cfg.td3_batch_size, self.rng)
                learned = self.discriminator.reward(observations.apply(torch.as_tensor, batch[0]),
                                                    torch.as_tensor(batch[1]), cfg.reward)
                absorbing_value = self._absorbing_value(learned) if cfg.absorbing else 0.0
                stats = td3.update(batch, learned, absorbing_value, cfg, self.world,
                                   actor=not cfg.warm_start or td3.updates >= cfg.critic_warmup,
                                   expert=None if cfg.bc_alpha is None else self._expert_batch(cfg.td3_batch_size))
                totals = {k: totals.get(k, 0.0) + v for k, v in stats.items()}
                updates += 1
            timers["policy update"] += time.perf_counter() - mark
        mark = time.perf_counter()
        size = max(1, cfg.td3_batch_size)
        expert_share = self._expert_absorbing_share() if cfg.absorbing else 0.0

        def draw(k: int, rows: int) -> tuple[Any, np.ndarray]:
            obs, actions, _, _ = replay.sample(rows, self.rng)
            return obs, actions

        d_stats = self._discriminator_updates(draw, size, (expert_share, replay.terminal_share() if cfg.absorbing
                                                           else 0.0))
        accuracy = 0.5 * (d_stats["d_accuracy_expert"] + d_stats["d_accuracy_generator"])
        self.d_accuracy = float(self.world.sum(np.array([accuracy]))[0]) / self.world.size
        timers["discriminator update"] += time.perf_counter() - mark
        self.iteration += 1
        self.num_timesteps += per_iteration
        seconds = time.perf_counter() - start
        finished = self.world.sum(np.array([sum(self._finished), len(self._finished)]))
        self._finished = []
        absorbing = self.discriminator.absorbing_reward(cfg.reward) if cfg.absorbing else None
        return {**d_stats, "absorbing_reward": absorbing, "absorbing_value": absorbing_value,
                "env_return": float(finished[0] / finished[1]) if finished[1] else None,
                "steps_per_second": per_iteration / seconds, "generator_updates": updates,
                **{k: v / max(updates, 1) for k, v in totals.items()},
                **{f"time_{k.replace(' ', '_')}": v / seconds for k, v in timers.items()}}

    def _warm_start(self) -> None:
        """Behaviour-clone the off-policy generator's actor (``warm_start`` gradient steps of squared error on the
        dataset's batches, Adam at 1e-3), then set the targets to it."""
        policy = self.model.policy

        def loss_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            return policy.head.squared_error(policy(obs), act).mean()

        settings = CloningConfig(n_epochs=None, learning_rate=1e-3, train_on="all", min_steps=self.config.warm_start,
                                 seed=self.config.seed)
        fit(loss_fn, self.td3.actor_params, self.expert_dataset, settings, policy, progress=False, world=self.world)
        self.td3.sync_targets()

    # -- SB2's model API ------------------------------------------------------------------------------

    def predict(self, observation: Any, state: Any = None, mask: Any = None, deterministic: bool = False) -> Any:
        return self.model.policy.predict(observation, state, mask, deterministic)

    def action_probability(self, observation: Any, state: Any = None, mask: Any = None, actions: Any = None,
                           logp: bool = False) -> Any:
        return self.model.policy.action_probability(observation, state, mask, actions, logp)

    def evaluate(self, env: Any = None, n_episodes: int = 20, seed: int = EVAL_SEED) -> tuple[float, float]:
        """Mean and std of the return over ``n_episodes`` deterministic episodes of ``env`` (an env id or
        env; by default the training env's id)."""
        env = env if env is not None else self._eval_env
        if env is None:
            raise UsageError("evaluate needs an env")
        return self.model.policy.evaluate(env, n_episodes, seed)

    def pretrain(self, dataset: TrainingData | str | Path, n_epochs: int = 10, learning_rate: float = 1e-4,
                 adam_epsilon: float = 1e-8, val_interval: int | None = None, progress: bool = True,
                 **config: Any) -> History:
        """Warm-start the policy by behaviour cloning: SB2's ``pretrain`` signature and defaults;
        ``config`` takes the other ``trainers.common.configs.CloningConfig`` fields."""
        data = as_training_data(dataset, config.get("seed", self.config.seed))
        if self.config.normalize_obs:
            self._observation_stats_from(data)
        policy = self.model.policy
        return pretrain(policy, data, lambda obs, act: policy.log_prob(obs, act), progress=progress,
                        n_epochs=n_epochs, learning_rate=learning_rate, adam_epsilon=adam_epsilon,
                        val_interval=val_interval, **config)

    def get_parameters(self) -> dict[str, np.ndarray]:
        """The generator's parameters and buffers (policy and critic), by name."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def load_parameters(self, parameters: Mapping[str, Any]) -> None:
        self.model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in parameters.items()})

    def save(self, path: str | Path) -> Path:
        """A directory that ``GAIL.load`` resumes from exactly: the policy (as ``trainers.bc`` saves it),
        the critic, the discriminator, the optimisers, the normalisers and the random state. The expert
        dataset is not stored (unlike SB2). Nothing is pickled."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        for prefix, tensors in (("model", self.model.state_dict()), ("discriminator", self.discriminator.state_dict()),
                                ("g_optimizer", self.g_optimizer.state()), ("d_optimizer", self.d_optimizer.state())):
            arrays.update({f"{prefix}/{k}": v.detach().cpu().numpy() for k, v in tensors.items()})
        for prefix, stats in (("obs_stats", self.obs_stats), ("d_obs_stats", self.d_obs_stats),
                              ("return_stats", self.return_stats)):
            arrays.update({f"{prefix}/{k}": v for k, v in stats.state().items()})
        # The rollouts the next discriminator update will still use (none without a replay)
        kept = list(self.replay)[max(0, len(self.replay) - self.config.discriminator_replay + 1):]
        arrays["generator_ends"] = self.generator_ends
        for i, (obs, act, terminals) in enumerate(kept):
            arrays.update({f"replay/actions/{i}": act, f"replay/terminals/{i}": np.array(terminals)})
            arrays.update({f"replay/obs/{i}/{path}".rstrip("/"): leaf for path, leaf in
                           (obs.items() if isinstance(obs, dict) else [("", obs)])})
        if self.td3 is not None:  # the off-policy generator's networks, optimisers and every transition kept
            for part, tensors in self.td3.state_dicts().items():
                arrays.update({f"td3/{part}/{k}": v.detach().cpu().numpy() for k, v in tensors.items()})
            arrays.update({f"transitions/{k}": v for k, v in self.transitions.state().items()})
        arrays["rng/torch"] = torch.get_rng_state().numpy()
        state = {"config": dataclasses.asdict(self.config), "num_timesteps": self.num_timesteps,
                 "iteration": self.iteration, "d_accuracy": self.d_accuracy, "rng": self.rng.bit_generator.state}
        with atomic.destination(path, overwrite=True, replaceable=lambda p: (p / STATE_FILE).is_file()) as tmp:
            self.model.policy.save(tmp, {"trainer": "gail"})
            (tmp / STATE_FILE).write_text(json.dumps(state, default=int))
            np.savez(tmp / "trainer.npz", **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, env: Any = None, expert_dataset: TrainingData | str | Path | None = None,
             **overrides: Any) -> "GAIL":
        """Load what ``save`` (or ``expertdata train gail --out``) wrote; with ``env`` and ``expert_dataset``,
        ``learn`` continues exactly where the saved run stopped."""
        path = Path(path)
        policy = Policy.load(path, env)
        try:
            state = json.loads((path / STATE_FILE).read_text())
            with np.load(path / "trainer.npz", allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise UnreadableError(f"{path}: not a saved GAIL model ({exc})") from None
        config = GAILConfig(**{**state["config"], **overrides})
        model = cls(policy, None, expert_dataset, config=config)
        model.num_timesteps, model.iteration = state["num_timesteps"], state["iteration"]
        model.d_accuracy = state.get("d_accuracy")

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

        model.model.load_state_dict({k: torch.as_tensor(v) for k, v in part("model").items()})
        model.discriminator.load_state_dict({k: torch.as_tensor(v) for k, v in part("discriminator").items()})
        model.g_optimizer.load_state({k: torch.as_tensor(v) for k, v in part("g_optimizer").items()})
        model.d_optimizer.load_state({k: torch.as_tensor(v) for k, v in part("d_optimizer").items()})
        for prefix, stats in (("obs_stats", model.obs_stats), ("d_obs_stats", model.d_obs_stats),
                              ("return_stats", model.return_stats)):
            stats.load_state(part(prefix))
        replay = part("replay")
        for i in range(sum(k.startswith("terminals/") for k in replay)):
            obs = part(f"replay/obs/{i}") or replay[f"obs/{i}"]  # a dict by leaf path, or one array
            model.replay.append((obs, replay[f"actions/{i}"], int(replay[f"terminals/{i}"])))
        model.generator_ends[:] = arrays.get("generator_ends", 0)
        if model.td3 is not None:
            model.td3.load_state_dicts({name: {k: torch.as_tensor(v) for k, v in part(f"td3/{name}").items()}
                                        for name in model.td3.state_dicts()})
            model.transitions.load_state(part("transitions"))
        torch.set_rng_state(torch.as_tensor(arrays["rng/torch"]))
        model.rng.bit_generator.state = state["rng"]
        if env is not None:
            model.set_env(env)
        return model
