"""Every format round-trips every dataset bit for bit, and the digest is the same in each."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import expertdata
from expertdata.io import formats

from .conftest import SUFFIXES, assert_same_arrays, make_arrays, make_dataset

FORMAT_NAMES = list(SUFFIXES)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       obs=st.sampled_from(["vector", "image", "paths"]),
       actions=st.sampled_from(["box", "discrete"]),
       src=st.sampled_from(FORMAT_NAMES), dst=st.sampled_from(FORMAT_NAMES),
       chunk_rows=st.sampled_from([None, 1, 7]), zarr_format=st.sampled_from([3, 2]))
def test_round_trip_between_every_pair_of_formats(lengths, obs, actions, src, dst, chunk_rows, zarr_format):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        original = expertdata.Dataset.from_arrays(
            {"env_id": "Test-v0", "user": {"note": "property test"}}, tmp / "a",
            **make_arrays(tuple(lengths), obs, actions, root=tmp / "a"))
        options = expertdata.WriteOptions(chunk_rows=chunk_rows, zarr_format=zarr_format)
        first = expertdata.save(original, tmp / "a" / f"data{SUFFIXES[src]}", options=options)
        second = expertdata.convert(first.path, tmp / "b" / f"data{SUFFIXES[dst]}", options=options)
        assert first.digest == second.digest == expertdata.digest(original)
        with expertdata.load(second.path) as copy:
            assert_same_arrays(original, copy)
            assert copy.metadata["env_id"] == "Test-v0" and copy.metadata["user"] == {"note": "property test"}
            assert expertdata.validate(copy).ok
        if obs == "paths":  # the image files travel with the dataset
            assert (tmp / "b" / "images" / "0000.png").read_bytes() == (tmp / "a" / "images" / "0000.png").read_bytes()


def test_zarr_format_2_is_written_on_request_and_read_by_zarr_as_version_2(tmp_path):
    import zarr

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "cartpole.npz"
    expertdata.convert(fixture, tmp_path / "v2.zarr", options=expertdata.WriteOptions(zarr_format=2))
    assert (tmp_path / "v2.zarr" / ".zgroup").is_file() and not (tmp_path / "v2.zarr" / "zarr.json").exists()
    group = zarr.open_group(str(tmp_path / "v2.zarr"), mode="r", zarr_format=2)
    with expertdata.load(fixture) as source:
        assert np.array_equal(group["obs"][:], source["obs"][:])
    assert expertdata.validate(tmp_path / "v2.zarr").ok  # no chunk checksums, but the recorded digest


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_arrays_stay_lazy_until_sliced(tmp_path, name):
    path = expertdata.save(make_dataset(lengths=(50, 50)), tmp_path / f"d{SUFFIXES[name]}").path
    with expertdata.load(path) as ds:
        assert not isinstance(ds["obs"], np.ndarray)
        assert np.asarray(ds["obs"][10:12]).shape == (2, 3)


@pytest.mark.parametrize("name,compression,label", [
    ("hdf5", "gzip:3", "gzip:3"), ("hdf5", "lzf", "lzf"), ("zarr", "zstd:5", "zstd:5"),
    ("zarr", "none", "none"), ("npz", "deflate", "deflate")])
def test_compression_and_chunking_are_the_users_choice(tmp_path, name, compression, label):
    dataset = make_dataset(lengths=(64, 36))
    path = tmp_path / f"d{SUFFIXES[name]}"
    expertdata.save(dataset, path, options=expertdata.WriteOptions(chunk_rows=16, compression=compression))
    with expertdata.load(path) as ds:
        assert ds.storage["obs"]["compression"] == label
        if name != "npz":
            assert ds.storage["obs"]["chunks"] == [16, 3]
        assert_same_arrays(dataset, ds)


def test_a_compression_the_format_lacks_is_refused(tmp_path):
    with pytest.raises(expertdata.UsageError, match="lzf.*not available for zarr"):
        expertdata.save(make_dataset(), tmp_path / "d.zarr", options=expertdata.WriteOptions(compression="lzf"))
    assert not (tmp_path / "d.zarr").exists()


def test_format_is_chosen_by_suffix_or_named(tmp_path):
    assert formats.for_path("x.hdf5").name == "hdf5"
    assert formats.for_path("x.zarr.zip").name == "zarr-zip"
    assert formats.for_path("x.bin", "npz").name == "npz"
    with pytest.raises(expertdata.UsageError, match="cannot tell the format"):
        formats.for_path("x.bin")
    path = expertdata.save(make_dataset(), tmp_path / "data.bin", format="hdf5").path
    assert expertdata.load(path).format == "hdf5"  # read by content, whatever the name


def test_text_in_zarr_and_hdf5_is_stored_as_code_points(tmp_path):
    dataset = make_dataset(root=tmp_path, obs="paths")
    for suffix in (".h5", ".zarr"):
        with expertdata.load(expertdata.save(dataset, tmp_path / f"d{suffix}").path) as ds:
            assert ds["obs"].dtype == dataset["obs"].dtype
            assert ds["obs"][2:4].tolist() == ["images/0002.png", "images/0003.png"]


def test_saving_an_existing_destination_needs_overwrite(tmp_path):
    path = tmp_path / "d.zarr"
    expertdata.save(make_dataset(seed=1), path)
    with pytest.raises(expertdata.UsageError, match="already exists"):
        expertdata.save(make_dataset(seed=2), path)
    expertdata.save(make_dataset(seed=2), path, overwrite=True)
    assert expertdata.digest(expertdata.load(path)) == expertdata.digest(make_dataset(seed=2))
    assert [p.name for p in tmp_path.iterdir()] == ["d.zarr"]
