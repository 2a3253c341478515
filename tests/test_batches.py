"""Serving batches: every transition once per epoch, exact traj_limitation and splits, the same batches for
the same seed in every format, out-of-core shuffling that mixes episodes, torch and MPI."""
from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import expertdata
from expertdata import DataLoader, ExpertDataset

from .conftest import SUFFIXES, make_arrays

LENGTHS = (30, 45, 25, 50, 40, 35, 20, 55)  # 300 transitions in 8 episodes


def _numbered(lengths=LENGTHS, **kwargs) -> dict:
    """Arrays whose obs[:, 0] is the transition's own index, so a batch says which rows it holds."""
    arrays = make_arrays(tuple(lengths), **kwargs)
    arrays["obs"][:, 0] = np.arange(len(arrays["obs"]))
    return arrays


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batches")
    dataset = expertdata.Dataset.from_arrays(**_numbered())
    return {name: expertdata.save(dataset, root / f"d{suffix}", options=expertdata.WriteOptions(chunk_rows=32)).path
            for name, suffix in SUFFIXES.items()}


def _ids(batch) -> np.ndarray:
    return np.asarray(batch[0])[:, 0].astype(np.int64)


def _epoch(loader) -> list[np.ndarray]:
    return [_ids(b) for b in loader]


@pytest.mark.parametrize("name", list(SUFFIXES))
@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("partial", [True, False])
def test_every_transition_appears_exactly_once_per_epoch(files, name, in_memory, shuffle, partial):
    ds = ExpertDataset(files[name], verbose=0, seed=1, in_memory=in_memory)
    assert ds.in_memory == in_memory
    indices = ds.train_indices
    loader = DataLoader(indices, ds.observations, ds.actions, 16, infinite_loop=False, shuffle=shuffle,
                        partial_minibatch=partial, seed=3, block_rows=40, shuffle_buffer=2)
    for _ in range(2):  # two epochs, each complete
        batches = _epoch(loader)
        seen = np.concatenate(batches)
        assert all(len(b) == 16 for b in batches[:-1]) and len(batches) == len(loader)
        if partial:
            assert sorted(seen) == sorted(indices)
        else:
            assert len(seen) == len(indices) // 16 * 16 and len(set(seen)) == len(seen)
            assert set(seen) <= set(indices)
        if not shuffle:
            assert (np.diff(seen) > 0).all()
    ds.close()


def test_traj_limitation_keeps_exactly_the_first_episodes_and_says_how_many_there_are(files):
    ds = ExpertDataset(files["hdf5"], traj_limitation=3, verbose=0, seed=0)
    assert (ds.num_traj, ds.num_transition) == (3, 100)
    assert np.allclose(ds.returns, expertdata.load(files["npz"])["episode_returns"][:3])
    assert sorted(np.concatenate([ds.train_indices, ds.val_indices])) == list(range(100))
    assert ds.observations.shape == (100, 3)
    with pytest.raises(expertdata.UsageError, match="holds 8 episodes; ask for 1 to 8"):
        ExpertDataset(files["npz"], traj_limitation=9, verbose=0)


def _episode_of(steps) -> set[int]:
    starts = np.cumsum((0,) + LENGTHS[:-1])
    return set((np.searchsorted(starts, steps, side="right") - 1).tolist())


def test_episode_split_puts_whole_episodes_on_each_side(files):
    ds = ExpertDataset(files["zarr"], train_fraction=0.75, verbose=0, seed=5)
    train, val = _episode_of(ds.train_indices), _episode_of(ds.val_indices)
    assert len(train) == 6 and len(val) == 2 and not train & val
    assert sorted(np.concatenate([ds.train_indices, ds.val_indices])) == list(range(300))


def test_transition_split_is_sb2s_shuffled_steps(files):
    ds = ExpertDataset(files["npz"], split="transitions", verbose=0, seed=5)
    assert len(ds.train_indices) == 210 and len(ds.val_indices) == 90
    assert _episode_of(ds.train_indices) & _episode_of(ds.val_indices)


def test_a_single_episode_splits_its_steps_in_time(files):
    ds = ExpertDataset(files["npz"], traj_limitation=1, verbose=0, seed=0)
    assert ds.train_indices.tolist() == list(range(21)) and ds.val_indices.tolist() == list(range(21, 30))
    assert ds.get_next_batch("val")[0].shape[0] == 9


@pytest.mark.parametrize("in_memory", [True, False])
def test_same_seed_same_batches_in_every_format(files, in_memory):
    def batches(path, seed):
        ds = ExpertDataset(path, batch_size=16, verbose=0, seed=seed, in_memory=in_memory)
        out = [_ids(ds.get_next_batch("train")) for _ in range(30)]
        ds.close()
        return np.concatenate(out)

    reference = batches(files["npz"], 7)
    for name in SUFFIXES:
        assert np.array_equal(batches(files[name], 7), reference), name
    assert not np.array_equal(batches(files["npz"], 8), reference)


def test_out_of_core_shuffling_mixes_episodes(tmp_path):
    lengths = (250,) * 40
    path = expertdata.save(expertdata.Dataset.from_arrays(**_numbered(lengths)), tmp_path / "d.zarr",
                           options=expertdata.WriteOptions(chunk_rows=500)).path
    ds = ExpertDataset(path, train_fraction=1.0, verbose=0, in_memory=False, seed=0)
    starts = np.arange(0, 10_000, 250)

    def stats(shuffle):
        loader = DataLoader(ds.train_indices, ds.observations, ds.actions, 64, infinite_loop=False,
                            shuffle=shuffle, seed=0, block_rows=500, shuffle_buffer=4)
        episodes = [np.searchsorted(starts, b, side="right") - 1 for b in _epoch(loader)]
        distinct = np.mean([len(set(e.tolist())) for e in episodes])
        position = np.arange(len(episodes))
        rho = np.corrcoef(position, [np.mean(e) for e in episodes])[0, 1]
        return distinct, rho

    distinct, rho = stats(True)
    assert distinct >= 6 and abs(rho) < 0.5  # a buffer holds 8 episodes: batches mix them, in no set order
    ordered_distinct, ordered_rho = stats(False)
    assert ordered_distinct < 1.5 and ordered_rho > 0.99


def test_image_paths_are_decoded_on_the_fly_like_arrays(tmp_path):
    import gymnasium as gym

    from expertdata import envs
    from expertdata.recording.recorder import generate_expert_traj

    def env():
        return gym.make(envs.ENV_ID, max_episode_steps=30)

    generate_expert_traj(envs.pixel_cartpole_expert, tmp_path / "p" / "d.npz", env(), n_episodes=3)
    generate_expert_traj(envs.pixel_cartpole_expert, tmp_path / "a" / "d.h5", env(), n_episodes=3)
    for workers, backend in ((1, "threading"), (2, "threading"), (2, "multiprocessing")):
        paths = ExpertDataset(tmp_path / "p" / "d.npz", batch_size=16, verbose=0, seed=3, n_workers=workers,
                              backend=backend)
        arrays = ExpertDataset(tmp_path / "a" / "d.h5", batch_size=16, verbose=0, seed=3)
        for _ in range(3):
            (obs_p, act_p), (obs_a, act_a) = paths.get_next_batch("train"), arrays.get_next_batch("train")
            assert obs_p.dtype == np.uint8 and obs_p.shape == (16, 16, 16, 3)
            assert np.array_equal(obs_p, obs_a) and np.array_equal(act_p, act_a)
        paths.close()
        arrays.close()


def test_sb2_attributes_init_dataloader_and_pickling(files):
    ds = ExpertDataset(expert_path=files["hdf5"], batch_size=32, verbose=0, seed=0)
    assert (ds.num_traj, ds.num_transition) == (8, 300)
    assert ds.avg_ret == pytest.approx(np.mean(ds.returns)) and ds.std_ret == pytest.approx(np.std(ds.returns))
    with pytest.raises(expertdata.UsageError, match="init_dataloader"):
        ds.get_next_batch()
    ds.init_dataloader(50)
    assert ds.get_next_batch()[0].shape == (50, 3)
    ds.prepare_pickling()
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone.train_indices, ds.train_indices)
    assert np.array_equal(_ids(clone.get_next_batch("train")), _ids(ExpertDataset(
        files["hdf5"], batch_size=32, verbose=0, seed=0).get_next_batch("train")))
    table = ds.to_pandas()
    assert table["length"].tolist() == list(LENGTHS)
    ds.close()


def test_traj_data_dict_and_clear_errors(files):
    ds = ExpertDataset(traj_data=_numbered(), verbose=0, seed=0, batch_size=8)
    assert ds.get_next_batch("train")[0].shape == (8, 3)
    with pytest.raises(expertdata.UsageError, match="exactly one of expert_path and traj_data"):
        ExpertDataset(files["npz"], traj_data=_numbered())
    with pytest.raises(expertdata.UsageError, match="exactly one"):
        ExpertDataset()
    with pytest.raises(expertdata.UsageError, match="split must be one of"):
        ExpertDataset(files["npz"], split="random", verbose=0)
    with pytest.raises(expertdata.UsageError, match="train_fraction"):
        ExpertDataset(files["npz"], train_fraction=0.0, verbose=0)
    with pytest.raises(expertdata.UsageError, match="batch_size"):
        DataLoader(np.arange(3), np.zeros((3, 1)), np.zeros((3, 1)), 0)
    with pytest.raises(expertdata.UsageError, match="indices must lie"):
        DataLoader(np.arange(5), np.zeros((3, 1)), np.zeros((3, 1)), 2)
    with pytest.raises(expertdata.UsageError, match="backend"):
        DataLoader(np.arange(3), np.zeros((3, 1)), np.zeros((3, 1)), 2, backend="loky")
    with pytest.raises(expertdata.UsageError, match="no validation split"):
        ExpertDataset(files["npz"], train_fraction=1.0, verbose=0).get_next_batch("val")
    with pytest.raises(expertdata.UsageError, match="split must be None"):
        ds.get_next_batch("test")


def test_log_info_reports_the_kept_episodes(files, capsys):
    ExpertDataset(files["npz"], traj_limitation=2, verbose=1).close()
    out = capsys.readouterr().out
    assert "Total trajectories: 2" in out and "Total transitions: 75" in out


def test_torch_batches_and_the_iterable_dataset(files):
    import torch

    ds = ExpertDataset(files["zarr"], verbose=0, seed=0, batch_size=16)
    loader = DataLoader(ds.train_indices, ds.observations, ds.actions, 16, to_torch=True, device="cpu",
                        pin_memory=True, infinite_loop=False)
    obs, act = next(iter(loader))
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32 and act.shape == (16, 2)
    for workers in (0, 2):
        torch_loader = torch.utils.data.DataLoader(ds.torch_dataset("train"), batch_size=None, num_workers=workers)
        seen = torch.cat([b[0][:, 0] for b in torch_loader]).long().numpy()
        assert sorted(seen) == sorted(ds.train_indices)
    ds.close()


def test_two_ranks_serve_disjoint_shards_of_whole_episodes(files):
    shards = [ExpertDataset(files["npz"], verbose=0, seed=2, rank=r, world_size=2) for r in (0, 1)]
    for split in ("train", "val", "all"):
        a, b = (s.split_indices(split) for s in shards)
        assert not set(a) & set(b)
        assert sorted(np.concatenate([a, b])) == sorted(ExpertDataset(files["npz"], verbose=0, seed=2)
                                                          .split_indices(split))
        if split == "all":
            assert not _episode_of(a) & _episode_of(b) and abs(len(a) - len(b)) <= 55
    loaders = [DataLoader(s.indices, s.observations, s.actions, 16, infinite_loop=False, shuffle=True, seed=0)
               for s in shards]
    assert sorted(np.concatenate([np.concatenate(_epoch(lo)) for lo in loaders])) == list(range(300))


def test_under_mpirun_each_rank_sees_its_shard_once_per_epoch(files):
    mpirun = Path(sys.executable).parent / "mpirun"
    assert mpirun.exists(), "the [dev] install provides mpirun (the mpich package)"
    script = textwrap.dedent(f"""
        import numpy as np
        from mpi4py import MPI
        from expertdata import DataLoader, ExpertDataset
        ds = ExpertDataset({str(files['hdf5'])!r}, verbose=0, seed=0)
        assert ds.world_size == 2
        loader = DataLoader(ds.indices, ds.observations, ds.actions, 16, infinite_loop=False, shuffle=True, seed=0)
        seen = np.concatenate([b[0][:, 0] for b in loader]).astype(int)
        everything = MPI.COMM_WORLD.gather(seen, root=0)
        if MPI.COMM_WORLD.Get_rank() == 0:
            merged = np.concatenate(everything)
            assert sorted(merged) == list(range(300)), "not every transition once"
            print("ok", [len(s) for s in everything])
    """)
    result = subprocess.run([str(mpirun), "-n", "2", sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
