"""RLDS / Open X-Embodiment, read without TensorFlow, from Octo's debug copy of BridgeData in
../shared/fixtures/rlds."""
import io
import shutil

import numpy as np
import pytest

import expertdata
from expertdata.io.formats import rlds

from .conftest import BRIDGE

pytestmark = pytest.mark.skipif(not BRIDGE.is_dir(), reason=f"RLDS fixtures not found at {BRIDGE}")
TRAIN = "bridge_dataset-train.tfrecord-00000-of-00001"


def test_bridge_reads_episodes_images_language_and_splits(tmp_path):
    from PIL import Image

    from expertdata.core import guard

    scope = guard.Scope(BRIDGE)
    stored = rlds._example(scope, BRIDGE / TRAIN, *rlds.records(scope, BRIDGE / TRAIN)[0])
    first = {key: list(getattr(value, value.WhichOneof("kind")).value) for key, value in stored.items()}
    with expertdata.load(BRIDGE) as data:
        assert data.format == "rlds" and (data.n_episodes, data.n_transitions) == (50, 500)
        assert data.episodes.lengths.tolist() == [10] * 50
        assert data.metadata["splits"] == {"train": list(range(25)), "val": list(range(25, 50))}
        assert list(data.leaf_fields()) == ["image_0", "image_1", "image_2", "image_3", "state"]
        images = data["obs/image_0"][0:10]
        assert images.shape == (10, 64, 64, 3) and images.dtype == np.uint8
        expected = np.asarray(Image.open(io.BytesIO(first["steps/observation/image_0"][3])))
        assert np.array_equal(images[3], expected)
        assert np.allclose(data["obs/state"][0:10].ravel(), first["steps/observation/state"])
        assert data["language_instruction"][0] == first["steps/language_instruction"][0].decode()
        assert data["actions"].shape == (500, 7) and data["language_embedding"].shape == (500, 512)
        digest = expertdata.digest(data)
    report = expertdata.validate(BRIDGE)
    assert report.errors == () and any("is_last is never set" in p.message for p in report.warnings)
    copy = expertdata.convert(BRIDGE, tmp_path / "bridge.zarr")
    assert copy.digest == digest and expertdata.validate(copy.path).errors == ()


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "truncated|claims"),
    (lambda data: data[:20] + bytes([data[20] ^ 0xFF]) + data[21:], "is corrupt \\(CRC mismatch\\)"),
    (lambda data: (2**40).to_bytes(8, "little") + data[8:], "corrupt length|claims"),
])
def test_a_damaged_shard_is_refused_in_one_line(tmp_path, damage, message):
    folder = tmp_path / "bridge"
    shutil.copytree(BRIDGE, folder)
    shard = folder / TRAIN
    shard.write_bytes(damage(shard.read_bytes()))
    with pytest.raises(expertdata.UnreadableError, match=message):
        expertdata.load(folder)


def test_chosen_episodes_are_read_alone_and_the_others_data_skipped(tmp_path):
    """What a cluster's worker reads of its block: the chosen records are parsed and checked, the others only
    framed, so a damaged episode elsewhere does not stop it (the whole read still refuses it)."""
    from expertdata.core import guard

    folder = tmp_path / "bridge"
    shutil.copytree(BRIDGE, folder)
    shard = folder / TRAIN
    offset, _ = rlds.records(guard.Scope(folder), shard)[0]
    data = bytearray(shard.read_bytes())
    data[offset + 40] ^= 0xFF  # episode 0's data
    shard.write_bytes(bytes(data))
    with pytest.raises(expertdata.UnreadableError, match="episode 0|CRC mismatch"):
        expertdata.load(folder)
    chosen = [3, 24, 25, 49]
    with expertdata.load(BRIDGE) as whole, expertdata.load(folder, episodes=chosen) as alone:
        assert alone.metadata["splits"] == {"train": [0, 1], "val": [2, 3]}
        picked = whole.take(chosen)
        for name in whole.fields:
            assert np.array_equal(np.asarray(picked[name][:]), np.asarray(alone[name][:])), name
    with pytest.raises(expertdata.UsageError, match="episode 50 is outside its episodes 0-49"):
        expertdata.load(BRIDGE, episodes=[50])
