"""The per-episode table and the figure: real numbers, and a PNG that is not blank."""
from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

import expertdata
from expertdata.cli import main

from .conftest import make_dataset


def test_episode_table_has_one_row_per_episode():
    ds = make_dataset(lengths=(3, 5, 2))
    table = ds.episode_table()
    assert table["length"].tolist() == [3, 5, 2] and table["start"].tolist() == [0, 3, 8]
    assert np.allclose(table["return"], ds["episode_returns"])


def _is_a_real_figure(path) -> None:
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (800, 1200, 3)
    assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50


def test_plot_several_datasets_overlaid_from_the_cli(tmp_path):
    a = expertdata.save(make_dataset(lengths=(20, 30), seed=1), tmp_path / "a.zarr").path
    b = expertdata.save(make_dataset(lengths=(25, 25), seed=2, actions="discrete"), tmp_path / "b.npz").path
    result = CliRunner().invoke(main, ["plot", str(a), str(b), "--out", str(tmp_path / "fig.png")])
    assert result.exit_code == 0, result.output
    _is_a_real_figure(tmp_path / "fig.png")


def test_plot_image_datasets_in_both_forms(tmp_path):
    import gymnasium as gym

    from expertdata import envs
    from expertdata.recording.recorder import generate_expert_traj
    from expertdata.tools.plotting import plot

    arrays = expertdata.save(make_dataset(obs="image", lengths=(10, 10)), tmp_path / "img.h5").path
    paths = tmp_path / "p.npz"  # SB2's form: PNG files beside the dataset
    generate_expert_traj(envs.pixel_cartpole_expert, paths, gym.make(envs.ENV_ID, max_episode_steps=10), n_episodes=2)
    with expertdata.load(arrays) as ds, expertdata.load(paths) as other:
        assert other.has_image_paths
        plot([ds, other], tmp_path / "fig.png")
    _is_a_real_figure(tmp_path / "fig.png")


def test_grayscale_images_are_ranged_per_channel_as_the_schema_defines_images():
    """A uint8 (N, H, W) Box is an image (``expertdata.core.schema.is_image``): ranged over its one channel,
    as it is written to PNG files, not pixel by pixel."""
    from expertdata.tools.plotting import _observation_ranges

    frames = np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8)
    space = {"type": "Box", "shape": [8, 8], "dtype": "|u1", "low": 0, "high": 255}
    arrays = {**make_dataset(lengths=(5, 5)).fields, "obs": frames}
    gray = expertdata.Dataset.from_arrays({"observation_space": space}, None, **arrays)
    unit, low, mean, high = _observation_ranges(gray)
    assert unit == "channel" and low.shape == (1,) and high[0] == frames.max() and np.isclose(mean[0], frames.mean())


def _pixels_of(image: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((np.abs(image.astype(int) - rgb).sum(axis=-1) < 30).sum())


def test_overlaid_datasets_with_constant_returns_each_show_their_bars(tmp_path):
    """Two datasets whose returns and lengths never vary (every CartPole expert episode scores 500): each
    panel still shows a bar of each colour, and a JPEG is a JPEG."""
    from expertdata.recording.experts import cartpole

    a = expertdata.generate_expert_traj(cartpole, tmp_path / "a.zarr", "CartPole-v1", n_episodes=3)
    b = expertdata.generate_expert_traj(cartpole, tmp_path / "b.npz", "CartPole-v1", n_episodes=2, seed=7)
    result = CliRunner().invoke(main, ["plot", str(a.source), str(b.source), "--out", str(tmp_path / "f.jpg")])
    a.close(), b.close()
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "f.jpg") as picture:
        assert picture.format == "JPEG"
        image = np.asarray(picture.convert("RGB"))
    height, width = image.shape[0] // 2, image.shape[1] // 2
    panels = {"returns": image[40:height, :width], "lengths": image[40:height, width:],
              "actions": image[height:, :width]}
    for name, panel in panels.items():
        for colour in ((31, 119, 180), (255, 127, 14)):  # matplotlib's C0 and C1
            assert _pixels_of(panel, colour) > 500, (name, colour)
