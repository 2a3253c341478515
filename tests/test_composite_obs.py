"""Composite (Dict and Tuple) observations: stored one field per leaf, validated, converted, batched as dicts,
and trained on by BC and GAIL."""
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import expertdata
from expertdata import Dataset, ExpertDataset, envs, generate_expert_traj, spaces
from expertdata.core.rules import structural_problems
from trainers.bc import BC
from trainers.gail import GAIL, GAILConfig, load

LEAVES = ["cart", "pole", "view"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Three episodes of the Dict-observation CartPole, cut at 100 steps, recorded to Zarr."""
    path = tmp_path_factory.mktemp("dict") / "d.zarr"
    generate_expert_traj(envs.dict_cartpole_expert, path, gym.make(envs.DICT_ENV_ID, max_episode_steps=100),
                         n_episodes=3, seed=0)
    return path


def _arrays(path):
    with expertdata.load(path) as ds:
        return {name: np.asarray(ds[name][:]) for name in ds.fields}, dict(ds.metadata)


def test_spaces_are_flattened_into_leaves_named_by_their_paths():
    space = gym.spaces.Dict({"arm": gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (3,))}),
                             "both": gym.spaces.Tuple([gym.spaces.Discrete(3), gym.spaces.MultiBinary(2)])})
    spec = spaces.to_json(space)
    assert {p: leaf["type"] for p, leaf in spaces.leaves(spec).items()} == {
        "arm/pos": "Box", "both/0": "Discrete", "both/1": "MultiBinary"}
    value = space.sample()
    flat = spaces.flatten(spec, value)
    assert np.array_equal(flat["arm/pos"], value["arm"]["pos"]) and flat["both/0"] == value["both"][0]
    assert spaces.flatten(spec, flat) == flat  # already flat: as it is
    with pytest.raises(spaces.SpaceError, match="lacks its entry 'both'"):
        spaces.flatten(spec, {"arm": value["arm"]})


@pytest.mark.parametrize("spec, message", [
    ({"type": "Dict", "spaces": {"../up": {"type": "Discrete", "n": 2}}}, "key '../up' cannot name a field"),
    ({"type": "Dict", "spaces": {}}, "empty Dict space"),
    ({"type": "Tuple", "spaces": {"a": {"type": "Discrete", "n": 2}}}, "'spaces' must be a list"),
    (dict(type="Dict", spaces={"a": dict(type="Dict", spaces={"a": dict(type="Dict", spaces={"a": dict(
        type="Dict", spaces={"a": dict(type="Dict", spaces={"a": dict(type="Dict", spaces={"a": dict(
            type="Dict", spaces={"a": dict(type="Dict", spaces={"a": dict(type="Dict", spaces={
                "a": {"type": "Discrete", "n": 2}})})})})})})})})}), "deeper than 8"),
])
def test_malformed_composite_spaces_are_refused_unread(spec, message):
    with pytest.raises(spaces.SpaceError, match=message):
        spaces.check_json(spec)


@pytest.mark.parametrize("suffix", ["npz", "h5", "zarr.zip"])
def test_every_leaf_converts_bit_for_bit_between_our_formats(recorded, tmp_path, suffix):
    source, metadata = _arrays(recorded)
    assert sorted(source) == sorted(["actions", "episode_returns", "episode_starts", "rewards", "terminated",
                                     "truncated"] + [f"{b}/{leaf}" for b in ("obs", "final_obs") for leaf in LEAVES])
    assert metadata["schema_version"] == "1.1" and metadata["observation_space"]["type"] == "Dict"
    result = expertdata.convert(recorded, tmp_path / f"d.{suffix}")
    back = expertdata.convert(result.path, tmp_path / "back.zarr")
    assert result.digest == back.digest == expertdata.digest(expertdata.load(recorded))
    copy, _ = _arrays(back.path)
    assert all(np.array_equal(source[k], copy[k]) and source[k].dtype == copy[k].dtype for k in source)
    assert [p.rule.id for p in expertdata.validate(result.path).problems] == ["W109"]  # no card: no licence


def test_leaves_are_validated_against_their_own_spaces(recorded):
    fields, metadata = _arrays(recorded)

    def refused(metadata=metadata, **changes):
        arrays = {k: v for k, v in {**fields, **changes}.items() if v is not None}
        with pytest.raises(expertdata.InvalidDatasetError) as error:
            Dataset.from_arrays(metadata, **arrays)
        return str(error.value)

    found = [p.rule.id for p in expertdata.validate(Dataset.from_arrays(metadata, **fields)).problems]
    assert found == ["W109"]  # no card: no licence
    assert "E001 missing-field: obs/pole: a leaf of the composite observation space" in refused(**{"obs/pole": None})
    assert "E009 observation-space-shape: obs/view: rows of shape (8, 16, 3)" in refused(
        **{"obs/view": fields["obs/view"][:, :8]})
    assert "E002 bad-dtype: obs/cart" in refused(**{"obs/cart": fields["obs/cart"].astype("U8")})
    assert "obs: the Dict observation space is stored one field per leaf" in refused(obs=fields["obs/cart"])
    whole = refused(obs=fields["obs/cart"], **{f"obs/{leaf}": None for leaf in LEAVES})
    assert whole.startswith("<memory>: E001 missing-field: obs/cart") and "and 3 more problems" in whole
    whole = {**{k: v for k, v in fields.items() if not k.startswith("obs/")}, "obs": fields["obs/cart"]}
    assert "E009 observation-space-shape: obs: the Dict observation space is stored one field per leaf (obs/<key>)" in [
        p.one_line().split(", not")[0] for p in structural_problems(whole, metadata)]
    dict_actions = {**metadata, "action_space": {"type": "Dict", "spaces": {"a": metadata["action_space"]}}}
    assert "a Dict action space is not supported" in refused(dict_actions)
    outside = fields["obs/cart"].copy()
    outside[7] = np.inf
    report = expertdata.validate(Dataset.from_arrays(metadata, **{**fields, "obs/cart": outside}))
    assert [p.one_line() for p in report.errors] == ["E007 non-finite: obs/cart[7]: 1 row holds NaN or infinity"]


def test_batches_are_dicts_of_leaves_in_memory_and_out_of_core(recorded):
    for in_memory in (True, False):
        data = ExpertDataset(recorded, batch_size=32, seed=0, verbose=0, in_memory=in_memory)
        obs, actions = data.get_next_batch("train")
        assert list(obs) == LEAVES and obs["view"].shape == (32, 16, 16, 3) and obs["cart"].dtype == np.float32
        # the leaves of a row belong together: the expert's action follows from the cart and pole leaves
        rows = [envs.dict_cartpole_expert({k: v[i] for k, v in obs.items()}) for i in range(32)]
        assert rows == actions[:, 0].tolist()
        mean, std = data.observation_stats()
        assert mean.shape == std.shape == (2 + 2 + 16 * 16 * 3,)
        tensors, _ = next(iter(data.batches("all", 8, infinite=False, to_torch=True)))
        assert {type(t) for t in tensors.values()} == {torch.Tensor}
        sample, _ = data.sample(5, np.random.default_rng(0))
        assert {k: v.shape[0] for k, v in sample.items()} == dict.fromkeys(LEAVES, 5)
        data.close()


def test_bc_trains_one_network_over_vector_and_image_leaves(recorded, tmp_path):
    bc = BC(None, gym.make(envs.DICT_ENV_ID, max_episode_steps=100), recorded, seed=0, n_epochs=20).learn()
    assert bc.evaluate(n_episodes=5)[0] >= 90  # the expert scores 100 (the time limit)
    features = bc.policy.features
    assert [type(m).__name__ for m in features.images] == ["ImageFeatures"] and len(features.encoders) == 2
    env = gym.make(envs.DICT_ENV_ID)
    obs, _ = env.reset(seed=0)
    action, _ = bc.predict(obs)  # the env's own dict
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    assert bc.predict(batch)[0].shape == (2,) and bc.predict(batch)[0][0] == action
    with pytest.raises(expertdata.UsageError, match="observation 'view' of shape"):
        bc.predict({**obs, "view": obs["view"][:8]})
    bc.save(tmp_path / "policy")
    from trainers.common.policy import Policy

    loaded = Policy.load(tmp_path / "policy")
    assert loaded.predict(obs, deterministic=True)[0] == bc.predict(obs, deterministic=True)[0]


def test_gail_learns_from_dict_observations_and_resumes_exactly(recorded, tmp_path):
    small = dict(seed=1, n_envs=2, n_steps=32, batch_size=32, n_epochs=2, d_step=4, discriminator_replay=2,
                 checkpoint_interval=2)

    def fresh(folder):
        return GAIL(None, envs.DICT_ENV_ID, recorded, config=GAILConfig(checkpoint_dir=str(tmp_path / folder), **small))

    straight = fresh("a").learn(4 * 192)  # an iteration: 3 rollouts of 2 envs x 32 steps
    first = fresh("b").learn(2 * 192)
    resumed = load(tmp_path / "b" / f"{first.num_timesteps:09d}", env=envs.DICT_ENV_ID, expert_dataset=recorded,
                   checkpoint_dir=None)
    assert isinstance(resumed.replay[0][0], dict) and list(resumed.replay[0][0]) == LEAVES
    resumed.learn(straight.num_timesteps - first.num_timesteps, reset_num_timesteps=False)
    for name, value in straight.get_parameters().items():
        assert np.array_equal(value, resumed.get_parameters()[name]), name


def test_info_plot_and_peer_formats(recorded, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "expertdata", *map(str, args)], capture_output=True, text=True)

    shown = cli("info", recorded, "--no-digest")
    assert "Dict of cart: Box [2] float32, pole: Box [2] float32, view: Box [16, 16, 3] uint8" in shown.stdout
    assert cli("plot", recorded, "--out", tmp_path / "p.png").returncode == 0 and (tmp_path / "p.png").stat().st_size
    refused = cli("convert", recorded, tmp_path / "d4rl.hdf5", "--to", "d4rl")
    assert refused.returncode == 2 and not (tmp_path / "d4rl.hdf5").exists()
    assert refused.stderr.count("\n") == 1 and "d4rl stores one observation array" in refused.stderr
    assert "composite observation space (leaves cart, pole, view)" in refused.stderr


def _minari_written_by_minari(folder, env, episodes):
    """A Minari HDF5 dataset written by Minari's own storage code (its DataCollector needs jax for composite
    observations), with a Tuple of the env's Dict and a Discrete counter as the observation space."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    space = gym.spaces.Tuple([env.observation_space, gym.spaces.Discrete(3)])
    folder.mkdir(parents=True)
    storage = MinariStorage.new(folder, observation_space=space, action_space=env.action_space, data_format="hdf5")
    buffers = []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        seen, actions, rewards, ends = [obs], [], [], []
        done = False
        while not done:
            actions.append(envs.dict_cartpole_expert(obs))
            obs, reward, terminated, truncated, _ = env.step(actions[-1])
            seen.append(obs), rewards.append(reward), ends.append((terminated, truncated))
            done = terminated or truncated
        observations = ({k: np.stack([o[k] for o in seen]) for k in LEAVES}, np.arange(len(seen)) % 3)
        buffers.append(EpisodeBuffer(id=seed, seed=seed, observations=observations, actions=np.array(actions),
                                     rewards=np.array(rewards), terminations=np.array([e[0] for e in ends]),
                                     truncations=np.array([e[1] for e in ends]), infos={}))
    storage.update_episodes(buffers)
    storage.update_metadata({"dataset_id": folder.parent.name, "minari_version": minari.__version__})
    return folder


def test_minari_dict_and_tuple_observations_both_ways(recorded, tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    written = expertdata.convert(recorded, tmp_path / "expertdata" / "dict-v0", format="minari")
    episode = next(iter(minari.load_dataset("expertdata/dict-v0").iterate_episodes()))
    with expertdata.load(recorded) as source:
        assert list(episode.observations) == LEAVES and len(episode.observations["view"]) == 101
        assert np.array_equal(episode.observations["view"][:-1], source["obs/view"][:100])
        assert np.array_equal(episode.observations["pole"][-1], source["final_obs/pole"][0])
    assert expertdata.convert(written.path, tmp_path / "back.zarr").digest == written.digest

    theirs = _minari_written_by_minari(tmp_path / "theirs-v0" / "data",
                                       gym.make(envs.DICT_ENV_ID, max_episode_steps=30), 2)
    with expertdata.load(theirs.parent) as data:
        assert data.metadata["observation_space"]["type"] == "Tuple" and data.n_transitions == 60
        assert list(data.leaf_fields()) == ["0/cart", "0/pole", "0/view", "1"]
        assert data["obs/1"][:4].tolist() == [0, 1, 2, 0] and data["final_obs/1"][:].tolist() == [30 % 3] * 2
        assert expertdata.validate(data).errors == ()
    ours = expertdata.convert(theirs.parent, tmp_path / "t.zarr")
    again = expertdata.convert(ours.path, tmp_path / "expertdata" / "tuple-v0", format="minari")
    assert again.digest == ours.digest
    observations = next(iter(minari.load_dataset("expertdata/tuple-v0").iterate_episodes())).observations
    original = next(iter(minari.MinariDataset(theirs).iterate_episodes())).observations
    assert np.array_equal(observations[0]["view"], original[0]["view"]) and np.array_equal(observations[1], original[1])
