"""Recording demonstrations: SB2's generate_expert_traj on gymnasium, vector envs, crash-safe writes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import expertdata
from expertdata import envs as pixel
from expertdata.io.formats.chunked import journal_of
from expertdata.recording.experts import cartpole, pendulum
from expertdata.recording.recorder import RecordingError, generate_expert_traj

from .conftest import assert_same_arrays


class TinyEnv(gym.Env):
    """Five steps of nothing much, with whatever spaces a test needs."""

    def __init__(self, action_space, observation_space=None):
        self.action_space = action_space
        self.observation_space = observation_space or gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)
                                          if not isinstance(action, int) else action)
        self._t += 1
        return self.observation_space.sample(), float(np.sum(action)), self._t >= 5, False, {}


def test_recorded_dataset_has_the_sb2_fields_the_flags_and_metadata():
    ds = generate_expert_traj(cartpole, None, "CartPole-v1", n_episodes=3, seed=7)
    assert ds.n_episodes == 3 and ds.n_transitions == 1500
    assert ds["actions"].shape == (1500, 1) and ds["actions"].dtype == np.int64
    assert ds["truncated"][:].sum() == 3 and not ds["terminated"][:].any()
    assert ds["final_obs"].shape == (3, 4)
    meta = ds.metadata
    assert meta["env_id"] == "CartPole-v1" and meta["max_episode_steps"] == 500
    assert meta["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert meta["provenance"]["seed"] == 7 and "cartpole" in meta["provenance"]["expert"]
    assert [p.rule.id for p in expertdata.validate(ds).problems] == ["W109"]  # no card: no licence


def test_a_model_with_predict_is_asked_for_deterministic_actions_and_the_env_stays_open():
    class Model:
        calls = []

        def predict(self, obs, deterministic=False):
            self.calls.append(deterministic)
            return pendulum(obs), None

    env = gym.make("Pendulum-v1")
    generate_expert_traj(Model(), None, env, n_episodes=1)
    assert set(Model.calls) == {True}
    env.reset(seed=0)  # still usable: not closed
    with pytest.raises(expertdata.UsageError, match="no learn"):
        generate_expert_traj(pendulum, None, env, n_timesteps=10, n_episodes=1)


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_vector_recording_equals_serial_recording_of_the_same_seeds(mode):
    serial = generate_expert_traj(pendulum, None, "Pendulum-v1", n_episodes=5, seed=11)
    envs = gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode(mode)})
    vector = generate_expert_traj(pendulum, None, envs, n_episodes=5, seed=11)
    assert_same_arrays(serial, vector)


def test_vector_recording_of_unequal_episodes_keeps_each_episode_whole():
    envs = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync")
    random_policy = lambda obs: int(obs[2] > 0.02)  # noqa: E731  (falls fast, at different times)
    serial = generate_expert_traj(random_policy, None, "CartPole-v1", n_episodes=9, seed=0)
    vector = generate_expert_traj(random_policy, None, envs, n_episodes=9, seed=0)
    assert len(set(serial.episodes.lengths.tolist())) > 1
    assert_same_arrays(serial, vector)


@pytest.mark.parametrize("space", [gym.spaces.MultiDiscrete([3, 2]), gym.spaces.MultiBinary(4),
                                   gym.spaces.Discrete(3, start=1)])
def test_multidiscrete_multibinary_and_discrete_actions_round_trip(tmp_path, space):
    env = TinyEnv(space)
    env.action_space.seed(0)
    ds = generate_expert_traj(lambda obs: env.action_space.sample(), tmp_path / "d.zarr", env, n_episodes=3)
    assert [p.rule.id for p in expertdata.validate(tmp_path / "d.zarr").problems] == ["W109"]  # no card: no licence
    copy = expertdata.load(expertdata.convert(tmp_path / "d.zarr", tmp_path / "d.npz").path)
    assert_same_arrays(ds, copy)


def test_spaces_we_cannot_store_are_refused_by_name():
    env = TinyEnv(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
    with pytest.raises(expertdata.UsageError, match="cannot store a Dict action space"):
        generate_expert_traj(lambda obs: 0, None, env, n_episodes=1)
    env = TinyEnv(gym.spaces.Discrete(2), gym.spaces.Text(5))
    with pytest.raises(expertdata.UsageError, match="cannot store a Text space"):
        generate_expert_traj(lambda obs: 0, None, env, n_episodes=1)


@pytest.mark.parametrize("bad,message", [
    (lambda obs: np.zeros(3), r"episode 1 \(seed 1\), step 0: the expert returned an action of shape \(3,\)"),
    (lambda obs: np.array([np.nan]), r"episode 1 \(seed 1\), step 0: the expert returned a non-finite action"),
    (lambda obs: 1 / 0, r"episode 1 \(seed 1\), step 0: the expert raised ZeroDivisionError"),
])
@pytest.mark.parametrize("suffix", [".npz", ".zarr", ".h5"])
def test_a_bad_expert_gets_an_error_naming_the_step_and_finished_episodes_are_kept(tmp_path, bad, message, suffix):
    steps = {"n": 0}

    def expert(obs):
        steps["n"] += 1
        return pendulum(obs) if steps["n"] <= 200 else bad(obs)

    path = tmp_path / f"d{suffix}"
    with pytest.raises(RecordingError, match=message):
        generate_expert_traj(expert, path, "Pendulum-v1", n_episodes=3, seed=0)
    with expertdata.load(path) as kept:
        assert kept.n_episodes == 1 and kept.n_transitions == 200
        assert expertdata.validate(kept).ok


def test_ctrl_c_keeps_the_finished_episodes(tmp_path):
    steps = {"n": 0}

    def expert(obs):
        steps["n"] += 1
        if steps["n"] == 450:
            raise KeyboardInterrupt
        return pendulum(obs)

    with pytest.raises(KeyboardInterrupt):
        generate_expert_traj(expert, tmp_path / "d.npz", "Pendulum-v1", n_episodes=5)
    assert expertdata.load(tmp_path / "d.npz").n_episodes == 2


@pytest.mark.parametrize("suffix", [".npz", ".zarr.zip"])
def test_formats_written_once_stream_the_recording_into_a_store_beside_them(tmp_path, suffix):
    """Memory holds one episode: the finished ones are already on disk, beside the destination."""
    steps, on_disk = {"n": 0}, []

    def expert(obs):
        steps["n"] += 1
        if steps["n"] == 2 * 200 + 1:  # the first step of the third episode
            (staged,) = tmp_path.glob(f".recording-*-d{suffix}.zarr")
            with expertdata.load(staged) as so_far:
                on_disk.append(so_far.n_episodes)
        return pendulum(obs)

    recorded = generate_expert_traj(expert, tmp_path / f"d{suffix}", "Pendulum-v1", n_episodes=3, seed=0)
    assert on_disk == [2] and recorded.n_episodes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"d{suffix}"]
    assert_same_arrays(recorded, generate_expert_traj(pendulum, None, "Pendulum-v1", n_episodes=3, seed=0)
                       .with_metadata(recorded.metadata))


def test_nothing_is_left_behind_when_no_episode_finished(tmp_path):
    with pytest.raises(RecordingError):
        generate_expert_traj(lambda obs: 1 / 0, tmp_path / "d.zarr", "Pendulum-v1", n_episodes=2)
    assert list(tmp_path.iterdir()) == []


KILLED_RECORDING = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from expertdata.recording.experts import pendulum
    from expertdata.recording.recorder import generate_expert_traj

    out, ready = Path(sys.argv[1]), Path(sys.argv[2])
    steps = 0

    def expert(obs):
        global steps
        steps += 1
        if steps == 3 * 200 + 17:  # mid-way through the fourth episode
            ready.write_text("3 episodes done")
            time.sleep(600)
        return pendulum(obs)

    generate_expert_traj(expert, out, "Pendulum-v1", n_episodes=10, seed=0)
""")


def record_and_kill(out: Path) -> None:
    """Record Pendulum episodes to ``out`` in another process, killed (SIGKILL) in its fourth episode."""
    ready = out.with_name("ready")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RECORDING, str(out), str(ready)])
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), "the recording never reached the fourth episode"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ready.unlink()


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_a_killed_recording_leaves_every_finished_episode(tmp_path, suffix):
    out = tmp_path / f"d{suffix}"
    record_and_kill(out)
    report = expertdata.validate(out)
    assert report.ok, [p.one_line() for p in report.problems]
    with expertdata.load(out) as kept:
        assert (kept.n_episodes, kept.n_transitions) == (3, 600)
        assert_same_arrays(kept, generate_expert_traj(pendulum, None, "Pendulum-v1", n_episodes=3, seed=0)
                           .with_metadata(kept.metadata))
    assert journal_of(out).exists()  # the episodes after the first commit are in the journal beside it
    resumed = generate_expert_traj(pendulum, out, "Pendulum-v1", n_episodes=2, seed=3, append=True)
    assert resumed.n_episodes == 5 and not journal_of(out).exists()
    assert_same_arrays(resumed, generate_expert_traj(pendulum, None, "Pendulum-v1", n_episodes=5, seed=0)
                       .with_metadata(resumed.metadata))


def test_a_killed_npz_recording_leaves_its_episodes_in_the_store_beside_it(tmp_path):
    out = tmp_path / "d.npz"
    record_and_kill(out)
    (staged,) = tmp_path.glob(".recording-*-d.npz.zarr")
    assert not out.exists() and expertdata.validate(staged).ok
    expertdata.convert(staged, out)
    with expertdata.load(out) as kept:
        assert kept.n_episodes == 3


def test_existing_destination_needs_overwrite_or_append(tmp_path):
    for suffix in (".zarr", ".h5", ".npz"):
        path = tmp_path / f"d{suffix}"
        generate_expert_traj(pendulum, path, "Pendulum-v1", n_episodes=2, seed=0)
        with pytest.raises(expertdata.UsageError, match="overwrite=True .* append=True"):
            generate_expert_traj(pendulum, path, "Pendulum-v1", n_episodes=1)
        appended = generate_expert_traj(pendulum, path, "Pendulum-v1", n_episodes=2, seed=2, append=True)
        assert appended.n_episodes == 4
        assert_same_arrays(appended, generate_expert_traj(pendulum, None, "Pendulum-v1", n_episodes=4, seed=0)
                           .with_metadata(appended.metadata))
        assert appended.metadata["lineage"][-1]["operation"] == "append"
        with pytest.raises(expertdata.UsageError, match="cannot append: its env_id"):
            generate_expert_traj(cartpole, path, "CartPole-v1", n_episodes=1, append=True)
        assert generate_expert_traj(pendulum, path, "Pendulum-v1", n_episodes=1, overwrite=True).n_episodes == 1


def test_images_go_to_npz_as_lossless_png_files_beside_it(tmp_path):
    env = lambda: gym.make(pixel.ENV_ID, max_episode_steps=20)  # noqa: E731
    arrays = generate_expert_traj(pixel.pixel_cartpole_expert, tmp_path / "a" / "d.zarr", env(), n_episodes=2)
    paths = generate_expert_traj(pixel.pixel_cartpole_expert, tmp_path / "b" / "d.npz", env(), n_episodes=2,
                                 image_folder="frames")
    assert arrays["obs"].dtype == np.uint8 and arrays["obs"].shape == (40, 16, 16, 3)
    assert paths["obs"][:2].tolist() == ["frames/000000000.png", "frames/000000001.png"]
    assert len(list((tmp_path / "b" / "frames").glob("*.png"))) == 40 + 2
    from expertdata.core.images import read_image

    decoded = np.stack([read_image(tmp_path / "b" / p) for p in paths["obs"][:]])
    assert np.array_equal(decoded, arrays["obs"][:])
    found = [p.rule.id for p in expertdata.validate(tmp_path / "b" / "d.npz").problems]
    assert found == ["W109"]  # no card: no licence


def test_bounds_read_as_their_dtype_and_older_files_still_match(tmp_path):
    """Box bounds are written as the shortest decimal of their dtype (4.8, not float32's 4.800000190734863);
    a dataset that older versions wrote with every digit still matches the env, and appends."""
    import gymnasium

    from expertdata.recording.experts import cartpole

    space = expertdata.core.spaces.to_json(gymnasium.make("CartPole-v1").observation_space)
    assert space["high"][0] == 4.8 and space["low"][2] == -0.41887903
    path = tmp_path / "old.zarr"
    generate_expert_traj(cartpole, path, "CartPole-v1", n_episodes=1)
    with expertdata.load(path) as ds:
        old = {**ds.metadata, "observation_space": {**space, "high": [4.800000190734863, "inf", 0.41887903213500977,
                                                                      "inf"]}}
        arrays = {k: np.asarray(a[:]) for k, a in ds.fields.items()}
    older = expertdata.save(expertdata.Dataset.from_arrays(old, None, **arrays), tmp_path / "older.zarr").path
    assert expertdata.validate(older).ok
    dataset = expertdata.ExpertDataset(older, verbose=0)
    assert dataset.fitting_spaces(*(gymnasium.make("CartPole-v1").observation_space,
                                    gymnasium.make("CartPole-v1").action_space))[0].high[0] == np.float32(4.8)
    with generate_expert_traj(cartpole, older, "CartPole-v1", n_episodes=1, seed=5, append=True) as appended:
        assert appended.n_episodes == 2


def test_a_save_path_without_a_suffix_is_an_npz_as_sb2_documented(tmp_path, monkeypatch):
    """SB2: ``generate_expert_traj(model, 'expert_cartpole', env, n_episodes=10)`` writes ``expert_cartpole.npz``;
    a name whose suffix names a format keeps it."""
    monkeypatch.chdir(tmp_path)
    with generate_expert_traj(cartpole, "expert_cartpole", "CartPole-v1", n_episodes=2) as ds:
        assert ds.format == "npz" and Path(ds.source).name == "expert_cartpole.npz"
    with generate_expert_traj(cartpole, "kept.zarr", "CartPole-v1", n_episodes=1) as ds:
        assert ds.format == "zarr"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert_cartpole.npz", "kept.zarr"]


def test_a_full_disk_at_the_end_of_an_npz_says_where_the_episodes_are_and_how_to_finish(tmp_path, monkeypatch):
    """``.npz`` is written from its staging store at the end: when that write fails (the disk full), the finished
    episodes stay in the staging store, and the message counts what a reader finds there and gives the command
    that finishes the dataset."""
    import errno
    import re

    from expertdata.io.formats import npz

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(npz.NpzSink, "close", full)
    with pytest.raises(expertdata.core.errors.WriteError) as failed:
        generate_expert_traj(cartpole, tmp_path / "r.npz", "CartPole-v1", n_episodes=3, seed=0)
    monkeypatch.undo()
    message = str(failed.value)
    found = re.search(r"the 3 finished episodes are kept in (\S+); finish it with: expertdata convert (\S+) (\S+)",
                      message)
    assert found and found[1] == found[2] and found[3] == str(tmp_path / "r.npz"), message
    assert not (tmp_path / "r.npz").exists()
    expertdata.convert(found[2], found[3])
    with expertdata.load(tmp_path / "r.npz") as finished:
        assert finished.n_episodes == 3 and expertdata.validate(finished).ok
