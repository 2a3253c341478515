"""``GAILConfig``: GAIL's hyperparameters (free of torch, so the command line reads them without it)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from expertdata import UsageError

REWARDS = ("positive", "logit")
OBS_NORMALIZATIONS = ("running", "expert")
PENALTY_POINTS = ("interpolates", "expert")
GENERATORS = ("auto", "ppo", "td3")
ABSORBING_REWARDS = ("learned", "lowest")


@dataclass
class GAILConfig:
    """GAIL's hyperparameters: SB2's names first, then the PPO generator's. Defaults differ from SB2's
    where measurement said so (``benchmarks/gail.py``): 32 discriminator updates per iteration at 1e-3
    (SB2's single update at 3e-4 leaves the discriminator too weak to guide a PPO generator), the
    ``logit`` reward (no survival bonus), a gradient penalty chosen by the action space (``resolved_for``: for Box
    actions 10 at the expert's inputs, R1, which keeps the reward smooth where the expert is yet lets it separate a
    generator close by; for discrete ones 1 between the inputs), and PPO updates stopped at a KL of 0.02 from the
    rollout's policy (fewer relapses once imitation is reached), and, where the expert's episodes run
    to the time limit, an absorbing state paid no more than the lowest learned reward (``absorbing_reward``: a
    policy that had reached the expert learned to fall once the discriminator paid its steps less than ending).

    :param hidden_size_adversary: units in each of the discriminator's two hidden layers.
    :param adversary_entcoeff: weight of the discriminator's entropy bonus.
    :param g_step: generator rollouts and updates per iteration.
    :param d_step: discriminator updates per iteration (each on a 1/d_step share of the last rollout).
    :param d_stepsize: the discriminator's Adam step size.
    :param reward: positive (SB2's -log(1 - D)) or logit (log D - log(1 - D)).
    :param gradient_penalty: weight of the discriminator's gradient penalty (0: none; None: 10 at the expert's
        inputs, 1 between the inputs).
    :param gradient_penalty_at: where it is taken: ``interpolates`` (between expert and generator inputs) or
        ``expert`` (the expert's inputs, R1: it leaves D free to be steep between the expert's states and the
        generator's); None: ``expert`` for Box actions, ``interpolates`` for the others (``resolved_for``).
    :param absorbing: an episode that terminates (not one cut by a time limit) leads to an absorbing state,
        which the discriminator scores like any transition (Kostrikov et al., "Discriminator-Actor-Critic",
        2019): the learned reward, not the env's termination, decides whether ending early pays, for any
        reward form. False: termination ends the return, as in SB2.
    :param absorbing_reward: the absorbing state's reward: ``learned`` (the discriminator's, as DAC), or
        ``lowest``: where most of the expert's episodes run until the time limit cuts them (ending is failure),
        no more than the lowest learned reward of the transitions it is paid beside (the rollout's, or the
        replayed batch's), so that ending never pays more than any step taken alive; where most terminate (ending
        is the task), the learned one.
    :param train_discriminator: False never trains it: a control showing what rewards alone do.
    :param discriminator_replay: the discriminator's generator transitions are drawn from this many of the
        latest rollouts (1: the last one only, SB2's scheme).
    :param n_envs: envs stepped together (when the env is given by id).
    :param n_steps: steps per env per rollout.
    :param log_std_init: the PPO generator's initial log std of Box actions (a state-independent, learned parameter;
        0: a std of 1 in the action's own units).
    :param learning_rate: the generator's (PPO's) Adam step size.
    :param n_epochs: PPO's passes over each rollout.
    :param batch_size: PPO's minibatch size.
    :param gamma: the discount factor.
    :param gae_lambda: GAE's lambda.
    :param clip_range: PPO's clipping of the probability ratio.
    :param ent_coef: weight of the policy's entropy bonus.
    :param vf_coef: weight of the critic's loss.
    :param max_grad_norm: the generator's gradients are scaled to at most this global norm.
    :param target_kl: stop a PPO update early once the policy's KL from the rollout's passes 1.5 times
        this (None: always n_epochs).
    :param anneal_lr: decay the generator's learning rate linearly to zero over each learn call.
    :param kl_accuracy_scale: with s > 0 (and target_kl), each PPO update's KL budget is
        target_kl * clip((a - 0.5) / s, 0, 1), where a is the discriminator's balanced accuracy in the previous
        iteration: the generator moves only as far as the discriminator tells it from the expert (0: off).
    :param net_arch: hidden layers of the actor's and the critic's MLPs.
    :param normalize_obs: normalise observations (the policy's and critic's, and the discriminator's by
        running statistics of expert and generator observations; MPI-synchronised).
    :param obs_normalization: where the policy's and critic's statistics come from: running (of the
        rollouts) or expert (the expert dataset's mean and std, fixed for the run).
    :param d_obs_normalization: where the discriminator's statistics come from: running (of expert and
        generator observations) or expert (the expert dataset's, fixed: the expert's states span unit scale
        however far the generator wanders).
    :param normalize_reward: scale learned rewards by the running std of their discounted sum.
    :param checkpoint_interval: iterations between checkpoints (None: none during learning); envs are
        reset at each, so a run resumed from one continues exactly.
    :param checkpoint_dir: the folder that receives checkpoints, each in a subfolder named by its
        timesteps (None: none are written).
    :param generator: ``ppo`` (on-policy, SB2's scheme; the default), ``td3`` (off-policy, Box actions only: TD3
        on every transition so far, each rewarded by the discriminator when replayed, Discriminator-Actor-Critic),
        or ``auto``: td3 for Box actions, ppo for the others. td3 is not the default yet: measured in
        docs/results/gail-tuning.md, it is not yet shown to hold on the suite's tasks.
    :param warm_start: behaviour-clone the off-policy generator's actor for this many gradient steps (squared
        error, the dataset's batches, Adam at 1e-3) before its first env step, which it then takes itself
        instead of random actions (0: none, random actions for ``learning_starts`` steps as TD3 does).
    :param critic_warmup: after a warm start, TD3 updates in which only the critics learn: the actor waits for
        critics that value its own actions under the discriminator's reward before it follows their gradient.
    :param bc_alpha: the off-policy generator's actor minimises TD3+BC's loss, this weight times its critic's
        value over the value's mean size, against its squared error on expert transitions (None: TD3's loss alone).
    :param td3_net_arch: hidden layers (ReLU) of the off-policy generator's actor and twin critics.
    :param td3_learning_rate: their Adam step size.
    :param td3_batch_size: replayed transitions per TD3 update (and per discriminator update, each side).
    :param buffer_size: transitions the off-policy generator keeps (the oldest replaced).
    :param learning_starts: env steps of uniformly random actions before the first TD3 update.
    :param tau: Polyak step of the target networks.
    :param policy_delay: critic updates per actor update.
    :param exploration_noise: std of the Gaussian noise on the actor's actions, in half ranges of the action space.
    :param target_noise: std of the noise on the target actor's actions (target policy smoothing)...
    :param noise_clip: ... clipped at this, in half ranges.
    :param seed: seeds everything; rank r's envs start from seed + 1000 r.
    :param torch_threads: torch's intra-op threads while learning (restored after); None uses one for MLP
        networks, whose small matrices lose more to thread hand-offs than they gain, and leaves a CNN alone.
    """

    hidden_size_adversary: int = 100
    adversary_entcoeff: float = 1e-3
    g_step: int = 3
    d_step: int = 32
    d_stepsize: float = 1e-3
    reward: Literal["positive", "logit"] = "logit"
    gradient_penalty: float | None = None
    gradient_penalty_at: Literal["interpolates", "expert"] | None = None
    absorbing: bool = True
    absorbing_reward: Literal["learned", "lowest"] = "lowest"
    train_discriminator: bool = True
    discriminator_replay: int = 1
    n_envs: int = 8
    n_steps: int = 128
    log_std_init: float = 0.0
    learning_rate: float = 1e-3
    n_epochs: int = 10
    batch_size: int = 256
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = 0.02
    anneal_lr: bool = False
    kl_accuracy_scale: float = 0.0
    net_arch: tuple[int, ...] = (64, 64)
    normalize_obs: bool = True
    obs_normalization: Literal["running", "expert"] = "running"
    d_obs_normalization: Literal["running", "expert"] = "running"
    normalize_reward: bool = True
    generator: Literal["auto", "ppo", "td3"] = "ppo"
    warm_start: int = 20_000
    critic_warmup: int = 20_000
    bc_alpha: float | None = 2.5
    td3_net_arch: tuple[int, ...] = (256, 256)
    td3_learning_rate: float = 3e-4
    td3_batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 10_000
    tau: float = 0.005
    policy_delay: int = 2
    exploration_noise: float = 0.1
    target_noise: float = 0.2
    noise_clip: float = 0.5
    checkpoint_interval: int | None = None
    checkpoint_dir: str | None = None
    seed: int | None = None
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise UsageError(f"reward must be one of {REWARDS}, not {self.reward!r}")
        if self.absorbing_reward not in ABSORBING_REWARDS:
            raise UsageError(f"absorbing_reward must be one of {ABSORBING_REWARDS}, not {self.absorbing_reward!r}")
        if self.gradient_penalty_at is not None and self.gradient_penalty_at not in PENALTY_POINTS:
            raise UsageError(f"gradient_penalty_at must be one of {PENALTY_POINTS}, not {self.gradient_penalty_at!r}")
        for name in ("obs_normalization", "d_obs_normalization"):
            if getattr(self, name) not in OBS_NORMALIZATIONS:
                raise UsageError(f"{name} must be one of {OBS_NORMALIZATIONS}, not {getattr(self, name)!r}")
        if min(self.g_step, self.d_step, self.discriminator_replay, self.n_envs, self.n_steps, self.batch_size,
               self.n_epochs) < 1:
            raise UsageError("g_step, d_step, discriminator_replay, n_envs, n_steps, batch_size and n_epochs must be "
                             "at least 1")
        for name in ("checkpoint_interval", "torch_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 (or None), not {value}")
        if self.kl_accuracy_scale < 0:
            raise UsageError(f"kl_accuracy_scale must be 0 (off) or positive, not {self.kl_accuracy_scale}")
        if self.generator not in GENERATORS:
            raise UsageError(f"generator must be one of {GENERATORS}, not {self.generator!r}")
        if min(self.warm_start, self.critic_warmup) < 0:
            raise UsageError("warm_start and critic_warmup count steps: 0 or more")
        if min(self.td3_batch_size, self.buffer_size, self.policy_delay) < 1 or not 0 < self.tau <= 1:
            raise UsageError("td3_batch_size, buffer_size and policy_delay must be at least 1, and tau in (0, 1]")
        for name in ("net_arch", "td3_net_arch"):
            arch = tuple(int(n) for n in getattr(self, name))
            if not arch or min(arch) < 1:
                raise UsageError(f"{name} must list one or more layer sizes of at least 1, not {arch}")
            setattr(self, name, arch)

    def resolved_for(self, action_space: dict) -> "GAILConfig":
        """This config with what depends on the action space decided where left open (measured in
        docs/results/gail-tuning.md):

        - ``generator="auto"``: td3 for Box actions, ppo for the others (td3 is refused for any but Box actions);
        - the gradient penalty, where left ``None``: Box actions get R1 at weight 10 (a penalty between the inputs
          left InvertedDoublePendulum's discriminator blind to a generator beside demonstrations that barely vary),
          the others a penalty of 1 between the inputs (R1 at 10 left MountainCar's discrete policy swinging between
          reaching the flag and never reaching it); a place given alone brings its weight (10 at the expert's
          inputs, 1 between them).
        """
        box = action_space["type"] == "Box"
        generator = ("td3" if box else "ppo") if self.generator == "auto" else self.generator
        if generator == "td3" and not box:
            raise UsageError(f"the td3 generator acts in Box action spaces; this one is {action_space['type']} "
                             "(generator='ppo')")
        at = self.gradient_penalty_at or ("expert" if box else "interpolates")
        weight = self.gradient_penalty if self.gradient_penalty is not None else (10.0 if at == "expert" else 1.0)
        return dataclasses.replace(self, generator=generator, gradient_penalty=weight, gradient_penalty_at=at)
