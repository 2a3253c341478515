"""The dataset object a user touches: fields that are numpy-like arrays in every format, episodes at hand, and
sequence windows as diffusion_policy's ``SequenceSampler`` and LeRobot's ``delta_timestamps`` give them."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

import expertdata
from expertdata.core.field import Field

from .conftest import LEROBOT30, PUSHT, SUFFIXES, invoke, make_arrays

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ROOT / "fixtures" / "cartpole.npz"


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict[str, Path]:
    """SB2's CartPole file in every format of ours."""
    folder = tmp_path_factory.mktemp("formats")
    return {fmt: CARTPOLE if fmt == "npz" else expertdata.convert(CARTPOLE, folder / f"c{suffix}").path
            for fmt, suffix in SUFFIXES.items()}


KEYS = [5, -1, np.int64(7), slice(None), slice(10, 20), slice(3, 400, 7), slice(None, None, -3), slice(50, 10, -4),
        slice(4990, 6000), [3, 1, 3, -2], np.array([[0, 1], [2, 0]]), (slice(None), 2), (7, slice(1, 3)),
        ([1, 2], [0, 3]), (slice(2, 9), [0, 0]), Ellipsis, (Ellipsis, 1), slice(4000, 4000)]


def _check_like_numpy(field, whole: np.ndarray) -> None:
    assert (field.shape, field.dtype, field.ndim, field.size, field.nbytes, len(field)) == (
        whole.shape, whole.dtype, whole.ndim, whole.size, whole.nbytes, len(whole))
    for key in KEYS + [whole[:, 0] > 0]:
        got, want = field[key], whole[key]
        assert np.array_equal(got, want) and np.shape(got) == np.shape(want), key
    assert np.array_equal(np.asarray(field), whole) and np.asarray(field, dtype=np.float64).dtype == np.float64
    assert np.array_equal(np.stack(list(field)), whole)


@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_fields_index_as_numpy_does_in_every_format(stored, fmt):
    with expertdata.load(stored[fmt]) as ds, np.load(CARTPOLE) as sb2:
        _check_like_numpy(ds["obs"], sb2["obs"])
        assert np.mean(ds["episode_returns"]) == pytest.approx(float(np.mean(sb2["episode_returns"])))
        stored_fields = sorted(f for f in sb2.files if f != "expertdata_metadata")
        assert sorted(ds.keys()) == stored_fields and "obs" in ds and len(ds) == len(stored_fields)
        assert dict(ds.items()).keys() == set(ds) and all(v.shape for v in ds.values())


def test_fields_where_they_live_index_as_numpy_does(stored, http_root):
    import shutil

    folder, base, _ = http_root
    shutil.copytree(stored["zarr"], folder / "c.zarr")
    with expertdata.load(f"{base}/c.zarr") as ds, np.load(CARTPOLE) as sb2, expertdata.load(stored["zarr"]) as here:
        _check_like_numpy(ds["obs"], sb2["obs"])
        assert np.array_equal(ds.episode(3)["actions"][:], sb2["actions"][1500:2000])
        assert [e.length for e in ds.iter_episodes()] == [500] * 10
        assert ds.episode_table().equals(here.episode_table())
        windows, local = ds.windows(16, 1, 7), here.windows(16, 1, 7)
        assert len(windows) == len(local) and np.array_equal(windows[-1]["obs"], local[-1]["obs"])


def test_a_field_is_read_in_one_bulk_read_and_errors_are_one_line(stored):
    class Counting:
        def __init__(self, array):
            self.shape, self.dtype, self.array, self.reads = array.shape, array.dtype, array, 0

        def __getitem__(self, key):
            self.reads += 1
            return self.array[key]

    counted = Counting(np.arange(12.0).reshape(6, 2))
    field = Field(counted, "field 'x'")
    assert np.array_equal(np.asarray(field), counted.array) and counted.reads == 1
    with pytest.raises(IndexError, match="field 'x': row 6 is out of bounds for 6 rows"):
        field[6]
    with pytest.raises(IndexError, match="field 'x': rows are indexed by integers"):
        field[1.5]
    with pytest.raises(TypeError, match="read-only"):
        field[0] = 1
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(field, copy=False)
    with expertdata.load(stored["zarr"]) as ds:
        assert not ds["obs"][:].flags.owndata or ds["obs"][:].flags.writeable  # a copy of the user's own
    memory = expertdata.Dataset.from_arrays({}, **make_arrays((3, 3)))
    with pytest.raises(ValueError, match="read-only"):
        memory["obs"][0] = 1  # an in-memory field is a read-only view
    with pytest.raises(KeyError, match="has no field 'observations'"):
        memory["observations"]


def test_episodes_at_hand(stored):
    with expertdata.load(stored["hdf5"]) as ds:
        last = ds.episode(-1)
        assert last.index == 9 and last.length == 500 and last.start == 4500 and len(last) == 500
        assert isinstance(last["obs"], Field) and np.array_equal(last["obs"][:], ds["obs"][4500:5000])
        assert (last.episode_return, last.terminated, last.truncated) == (500.0, False, True)
        assert last["digest"] == ds.metadata["episode_digests"][9] and last.final_obs.shape == (4,)
        with pytest.raises(expertdata.UsageError, match="episode 10 is outside its 10 episodes"):
            ds.episode(10)
        streamed = list(ds.iter_episodes())
        assert [e.index for e in streamed] == list(range(10))
        assert all(np.array_equal(e["actions"], ds.episode(e.index)["actions"][:]) for e in streamed)
        assert [e.index for e in ds.iter_episodes([3, -1])] == [3, 9]
        drawn = ds.sample_episodes(4, seed=0)
        assert len({e.index for e in drawn}) == 4 and [e.index for e in ds.sample_episodes(4, seed=0)] == [
            e.index for e in drawn]
        table = ds.episode_table()
        assert list(table.columns) == ["episode", "start", "length", "return", "terminated", "truncated", "digest"]
        assert table["start"].tolist() == list(range(0, 5000, 500)) and table["return"].sum() == 5000
        kept = ds.filter_episodes(lambda e: e.index % 3 == 0)
        assert kept.n_episodes == 4 and np.array_equal(kept["obs"][:500], ds["obs"][:500])
        written = expertdata.save(kept, stored["hdf5"].with_name("kept.zarr"), overwrite=True)
        assert expertdata.load(written.path).n_episodes == 4
    result = invoke("info", stored["zarr"], "--episodes")
    assert result.returncode == 0 and result.stdout.splitlines()[1].split()[:4] == ["0", "0", "500", "500.0"]


def _sampler_indices(episode_ends: np.ndarray, length: int, pad_before: int, pad_after: int) -> np.ndarray:
    """diffusion_policy's ``create_indices`` (diffusion_policy/common/sampler.py), re-derived: for each episode,
    windows from ``-pad_before`` to ``episode_length - length + pad_after``; the rows each reads and where they
    sit in it."""
    pad_before, pad_after = min(max(pad_before, 0), length - 1), min(max(pad_after, 0), length - 1)
    out = []
    for i, end in enumerate(episode_ends):
        start = 0 if i == 0 else episode_ends[i - 1]
        episode_length = end - start
        for idx in range(-pad_before, episode_length - length + pad_after + 1):
            buffer_start, buffer_end = max(idx, 0) + start, min(idx + length, episode_length) + start
            start_offset, end_offset = buffer_start - (idx + start), (idx + length + start) - buffer_end
            out.append([buffer_start, buffer_end, start_offset, length - end_offset])
    return np.asarray(out, np.int64)


def _sample_sequence(array, index: np.ndarray, length: int) -> np.ndarray:
    """diffusion_policy's ``SequenceSampler.sample_sequence`` for one key, re-derived."""
    buffer_start, buffer_end, sample_start, sample_end = (int(v) for v in index)
    sample = np.asarray(array[buffer_start:buffer_end])
    data = sample
    if sample_start > 0 or sample_end < length:
        data = np.zeros((length,) + sample.shape[1:], sample.dtype)
        if sample_start > 0:
            data[:sample_start] = sample[0]
        if sample_end < length:
            data[sample_end:] = sample[-1]
        data[sample_start:sample_end] = sample
    return data


@pytest.mark.skipif(not PUSHT.is_dir(), reason=f"diffusion_policy's PushT replay not found at {PUSHT}")
def test_windows_are_sequence_samplers_on_pusht_in_memory_and_out_of_core():
    """Every window of ``windows(16, pad_before=1, pad_after=7)`` on diffusion_policy's own PushT replay equals what
    ``SequenceSampler`` gives, for the low-dimensional arrays (state, action, keypoint); the 2.8 GB of images are
    checked on 200 windows spread over the replay, the first and last included."""
    raw = zarr.open_group(str(PUSHT), mode="r")
    ends = np.asarray(raw["meta/episode_ends"][:])
    expected = _sampler_indices(ends, 16, 1, 7)
    keys = {"obs": "state", "actions": "action", "keypoint": "keypoint"}
    truth = {ours: np.asarray(raw[f"data/{theirs}"][:]) for ours, theirs in keys.items()}
    with expertdata.load(PUSHT) as lazy:
        memory = expertdata.Dataset.from_arrays(lazy.metadata, **{n: np.asarray(lazy[n]) for n in lazy.fields
                                                                  if n != "img"})
        for ds in (lazy, memory):
            windows = ds.windows(16, pad_before=1, pad_after=7, fields=list(keys))
            assert len(windows) == len(expected) and np.array_equal(windows.sampler_indices(), expected)
            for i in range(len(windows)):
                got = windows[i]
                for ours in keys:
                    assert np.array_equal(got[ours], _sample_sequence(truth[ours], expected[i], 16)), (i, ours)
        images = lazy.windows(16, pad_before=1, pad_after=7, fields=["img"])
        for i in np.unique(np.r_[0, np.linspace(0, len(expected) - 1, 199).astype(int)]):
            assert np.array_equal(images[int(i)]["img"], _sample_sequence(raw["data/img"], expected[i], 16))


def test_frames_give_lerobots_delta_timestamps_in_rows():
    ds = expertdata.Dataset.from_arrays({}, **make_arrays((4, 3)))
    frames = ds.frames({"obs": [-2, 0], "actions": [0, 1, 2]})
    assert len(frames) == 7
    first, last = frames[0], frames[6]
    assert np.array_equal(first["obs"], ds["obs"][[0, 0]]) and first["obs_is_pad"].tolist() == [True, False]
    assert np.array_equal(last["actions"], ds["actions"][[6, 6, 6]])
    assert last["actions_is_pad"].tolist() == [False, True, True]
    lerobot = LEROBOT30
    if lerobot.is_dir():
        with expertdata.load(lerobot) as robot:  # 30 fps: a tenth of a second is three frames
            item = robot.frames(delta_timestamps={"observation.state": [-0.1, 0.0], "action": [0.0, 0.1]})[400]
            assert np.array_equal(item["obs"], robot["obs"][[397, 400]])
            assert np.array_equal(item["actions"], robot["actions"][[400, 403]])
            with pytest.raises(expertdata.UsageError, match="do not fall on frames"):
                robot.frames(delta_timestamps={"action": [0.05]})


def test_expert_dataset_serves_windows_by_split_and_rank(stored):
    whole = expertdata.ExpertDataset(stored["npz"], verbose=0, seed=0, traj_limitation=6)
    split = whole.windows("train", 8, pad_before=2, pad_after=3)
    assert set(split.episode) <= set(range(6)) and len(split)
    ranks = [expertdata.ExpertDataset(stored["zarr"], verbose=0, seed=0, traj_limitation=6, rank=r, world_size=2,
                                      in_memory=False) for r in range(2)]
    shares = [r.windows("train", 8, pad_before=2, pad_after=3) for r in ranks]
    assert sorted(np.r_[shares[0].first, shares[1].first].tolist()) == sorted(split.first.tolist())
    assert not set(shares[0].episode) & set(shares[1].episode)
    every = ranks[0].windows("train", 8, pad_before=2, pad_after=3, every_rank=True)
    assert np.array_equal(every.first, split.first)
    batches = ranks[1].window_batches("train", 8, 16, pad_before=2, pad_after=3, infinite=False, shuffle=False)
    seen = np.concatenate([b["obs"] for b in batches])
    assert seen.shape == (len(shares[1]), 8, 4) and np.array_equal(seen[0], shares[1][0]["obs"])


def test_windows_pickle_for_torch_loader_workers(stored):
    torch = pytest.importorskip("torch")
    with expertdata.load(stored["hdf5"]) as ds:
        windows = ds.take_episodes(3).windows(10, pad_before=2, fields=["obs", "actions", "rewards"])
        again = pickle.loads(pickle.dumps(windows))
        assert len(again) == len(windows) and np.array_equal(again[17]["rewards"], windows[17]["rewards"])
        loader = torch.utils.data.DataLoader(windows, batch_size=64, num_workers=2,
                                             multiprocessing_context="spawn")
        served = torch.cat([batch["obs"] for batch in loader])
        assert np.array_equal(served.numpy(), np.stack([windows[i]["obs"] for i in range(len(windows))]))
