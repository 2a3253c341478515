"""Other labs' files, second pass: the peer readers (LeRobot, RLDS, Minari, robomimic, D4RL, diffusion_policy,
imitation), cards, select/merge/convert and remote URLs, run through the command line on damaged, hostile and odd
inputs. Each case: the documented exit code, one line on stderr (never a traceback, never an escape sequence from a
file, never an internal error), nothing outside the dataset read, nothing created but what the command is for, the
input unchanged. The cases that could allocate what a file claims run in a fresh interpreter whose peak memory is
held to ``MEMORY_BOUND``; the ones that could wait for ever run under a time limit."""
from __future__ import annotations

import gc
import gzip
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import expertdata
from expertdata.cli import main

from . import hostile_inputs as h
from .conftest import BRIDGE, IMITATION, LEROBOT30, MINARI_ARROW, MINARI_HDF5
from .test_hostile import _chunk_bytes, _files, snapshot

pytestmark = pytest.mark.skipif(not h.LEROBOT21.is_dir() or not BRIDGE.is_dir(),
                                reason=f"peer fixtures not found at {h.SHARED_FIXTURES}")
#: Peak resident memory allowed to a command run on a file that claims gigabytes (the interpreter with numpy,
#: h5py, zarr, pyarrow and PyAV loaded takes about 200 MB of it).
MEMORY_BOUND = 700 * 2**20


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], dict]
    args: tuple[str, ...]
    code: int
    says: str
    creates: tuple[str, ...] = ()
    memory: bool = False  # run in a fresh interpreter, its peak memory measured


def _lerobot(videos=None, change=None, **kwargs) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        folder = h.lerobot21(tmp / "lr", videos=videos, **kwargs)
        if change is not None:
            change(folder, tmp)
        return {"src": folder}
    return build


def _info(change) -> Callable[[Path, Path], None]:
    return lambda folder, tmp: h.edit_json(folder / "meta" / "info.json", change)


def _write(relative: str, text: str | bytes) -> Callable[[Path, Path], None]:
    def change(folder: Path, tmp: Path) -> None:
        target = folder / relative
        target.write_bytes(text) if isinstance(text, bytes) else target.write_text(text)
    return change


def _linked(relative: str) -> Callable[[Path, Path], None]:
    return lambda folder, tmp: h.link_out(folder / relative, tmp)


def _fifo(relative: str) -> Callable[[Path, Path], None]:
    return lambda folder, tmp: h.fifo_at(folder / relative)


def _sparse(relative: str, size: int) -> Callable[[Path, Path], None]:
    def change(folder: Path, tmp: Path) -> None:
        with open(folder / relative, "r+b" if (folder / relative).exists() else "wb") as f:
            f.truncate(size)
    return change


def _copy(source: Path, change=None, name: str | None = None) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        path = h.copy_of(source, tmp, name)
        if change is not None:
            change(path, tmp)
        return {"src": path}
    return build


def _made(make, change=None, name: str = "d") -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        path = make(tmp / name)
        if change is not None:
            change(path, tmp)
        return {"src": path}
    return build


def _lerobot_v30(change) -> Callable[[Path], dict]:
    return _copy(LEROBOT30, change, "v30")


def _rlds(change) -> Callable[[Path], dict]:
    return _copy(BRIDGE, change, "bridge")


def _features(change) -> Callable[[Path, Path], None]:
    return lambda folder, tmp: h.edit_json(folder / "features.json", change)


def _feature(key_path: list[str], value) -> Callable[[dict], None]:
    def change(features: dict) -> None:
        node = features
        for key in key_path[:-1]:
            node = node[key]
        node[key_path[-1]] = value
    return change


_STEPS = ["featuresDict", "features", "steps", "sequence", "feature", "featuresDict", "features"]
_TRAIN = "bridge_dataset-train.tfrecord-00000-of-00001"


def _shard_named(name: str) -> Callable[[Path, Path], None]:
    return lambda folder, tmp: os.rename(folder / _TRAIN, folder / name)


def _nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _h5_group_renamed(old: str, new: str, copy: bool = True) -> Callable[[Path, Path], None]:
    def change(path: Path, tmp: Path) -> None:
        with h5py.File(path, "a") as f:
            f.copy(f[old], new) if copy else f.move(old, new)
    return change


def _arrow_folder_copied(old: str, new: str) -> Callable[[Path, Path], None]:
    return lambda folder, tmp: shutil.copytree(folder / "data" / old, folder / "data" / new)


def _dp_ends_bomb(folder: Path, tmp: Path) -> None:
    """``meta/episode_ends`` declared as 300 million int64 in one chunk (2.4 GB), its chunk a few bytes: a reader
    that decompresses it before checking the claim allocates gigabytes."""
    meta = folder / "meta" / "episode_ends" / ".zarray"
    h.edit_json(meta, lambda m: m.update(shape=[300_000_000], chunks=[300_000_000]))
    for chunk in meta.parent.glob("[0-9]*"):
        chunk.unlink()
    (meta.parent / "0").write_bytes(gzip.compress(b"\0" * 4096))


def _video_bomb(folder: Path, tmp: Path) -> None:
    """Episode 0's video replaced by a few frames of 4096x4096: a small file whose frames decode to gigabytes."""
    target = folder / "videos" / "chunk-000" / "observation.images.cam" / "episode_000000.mp4"
    target.unlink()
    h._video(target, 6, size=4096)


def _card_bomb(folder: Path, tmp: Path) -> None:
    laughs = "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(9))
    (folder / "README.md").write_text(f"---\n{laughs}---\n")


def _card_deep(folder: Path, tmp: Path) -> None:
    (folder / "README.md").write_text("---\ntags: " + "[" * 5000 + "]" * 5000 + "\n---\n")


def _card_escapes(folder: Path, tmp: Path) -> None:
    (folder / "README.md").write_text("---\nlicense: \"mit\\e]0;pwned\\a\"\ntags: [\"a\\e[31mred\"]\n---\n")


def _select_into_input(tmp: Path) -> dict:
    src = expertdata.convert(h.CARTPOLE, tmp / "x.zarr").path
    return {"src": src}


def _two_zarr(tmp: Path) -> dict:
    a = expertdata.convert(h.CARTPOLE, tmp / "a.zarr").path
    b = expertdata.convert(h.CARTPOLE, tmp / "b.zarr").path
    return {"a": a, "b": b}


def _npz_flipped(tmp: Path) -> dict:
    import struct
    import zipfile

    src = expertdata.convert(h.CARTPOLE, tmp / "d.npz").path
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("obs.npy")
    data = bytearray(src.read_bytes())
    name, extra = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name + extra + 200] ^= 0xFF
    src.write_bytes(bytes(data))
    return {"src": src}


def _npz_metadata(value) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        path = tmp / "m.npz"
        np.savez(path, **h.make_arrays((4, 4)), expertdata_metadata=value)
        return {"src": path}
    return build


def _garbage_h5(tmp: Path) -> dict:
    path = tmp / "g.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    return {"src": path}


def _empty_dataset(tmp: Path) -> dict:
    arrays = {k: v[:0] for k, v in h.make_arrays((4,)).items()}
    return {"src": expertdata.save(expertdata.Dataset.from_arrays({}, None, **arrays), tmp / "z.npz").path}


LEROBOT = [
    Case("lerobot: card on a real 2.1 folder touches nothing but its README", _copy(h.LEROBOT21, name="g1"),
         ("card", "{src}", "--license", "MIT"), 0, "MIT", creates=("g1/README.md",)),
    Case("lerobot: info.json missing", _lerobot(change=lambda f, t: (f / "meta" / "info.json").unlink()),
         ("info", "{src}"), 2, "not a dataset in any known format"),
    *[Case(f"lerobot: info.json {what}", _lerobot(change=_info(change)), ("validate", "{src}"), 2, says)
      for what, change, says in [
          ("fps is text", lambda i: i.update(fps="fast"), "fps must be a number"),
          ("chunks_size negative", lambda i: i.update(chunks_size=-1), "chunks_size is -1"),
          ("features is a list", lambda i: i.update(features=[1]), "features must be an object"),
          ("a shape of text", lambda i: i["features"]["action"].update(shape=["a"]), "must be an integer"),
          ("a feature of 10^12 values", lambda i: i["features"]["action"].update(shape=[10**6, 10**6]),
           "at most"),
          ("total_frames off", lambda i: i.update(total_frames=999), "E018"),
          ("a 40-byte template of a 3 GB path", lambda i: i.update(
              data_path="{episode_chunk:0999999999d}{episode_index:0999999999d}"), "formatted at most"),
          ("a template with an attribute", lambda i: i.update(data_path="{episode_index.__class__}"), "holds"),
          ("a template with an escape and a newline", lambda i: i.update(
              data_path="data/\x1b]0;pwned\x07\n{episode_index}.parquet"), "no such file"),
          ]],
    Case("lerobot: a template leading out", _lerobot(change=_info(lambda i: i.update(
        data_path="../../{episode_index}.parquet"))), ("info", "{src}"), 1, "leads out"),
    Case("lerobot: info.json nested 10,000 deep", _lerobot(change=_write("meta/info.json", _nested_json(10_000))),
         ("info", "{src}"), 2, "not a dataset"),
    Case("lerobot: a bad line in episodes.jsonl", _lerobot(change=_write("meta/episodes.jsonl", "{\"episode_index\"")),
         ("validate", "{src}"), 2, "line 1"),
    Case("lerobot: an episode length of text", _lerobot(change=_write(
        "meta/episodes.jsonl", '{"episode_index": 0, "length": "six"}\n')), ("validate", "{src}"), 2,
        "length must be an integer"),
    Case("lerobot: one episode index twice", _lerobot(change=_write(
        "meta/episodes.jsonl", "".join(json.dumps({"episode_index": 0, "tasks": [], "length": 6}) + "\n"
                                       for _ in range(3)))), ("validate", "{src}"), 2, "E019"),
    Case("lerobot: a bad line in episodes_stats.jsonl", _lerobot(change=_write("meta/episodes_stats.jsonl", "[[[")),
         ("validate", "{src}"), 2, "episodes_stats.jsonl, line 1"),
    Case("lerobot: a parquet file cut short", _lerobot(change=lambda f, t: os.truncate(
        f / "data" / "chunk-000" / "episode_000001.parquet", 100)), ("validate", "{src}"), 2, "episode_000001"),
    Case("lerobot: a parquet file of garbage", _lerobot(change=_write("data/chunk-000/episode_000001.parquet",
                                                                      b"PAR1" + b"\xff" * 300 + b"PAR1")),
         ("convert", "{src}", "{tmp}/o.zarr"), 2, "episode_000001"),
    Case("lerobot: a footer claiming 10^12 rows", _lerobot(change=lambda f, t: h.parquet_claiming(
        f / "data" / "chunk-000" / "episode_000002.parquet", 10**12)), ("info", "{src}"), 2, "E018", memory=True),
    Case("lerobot: action stored as text", _lerobot(change=lambda f, t: _text_action(f)), ("validate", "{src}"), 2,
         "not numbers"),
    Case("lerobot: a video with 40 frames for 6 rows", _lerobot(video_frames={1: 40}),
         ("convert", "{src}", "{tmp}/o.zarr"), 2, "E018"),
    Case("lerobot: a video with 3 frames for 6 rows", _lerobot(video_frames={1: 3}),
         ("convert", "{src}", "{tmp}/o.zarr"), 2, "holds 3 frames"),
    Case("lerobot: video frames of 4096x4096", _lerobot(change=_video_bomb), ("convert", "{src}", "{tmp}/o.zarr"),
         2, "4096x4096", memory=True),
    Case("lerobot: a 60 MiB episodes.jsonl", _lerobot(change=_sparse("meta/episodes.jsonl", 60 * 2**20)),
         ("info", "{src}"), 2, "at most", memory=True),
    *[Case(f"lerobot: {relative} is a link out", _lerobot(change=_linked(relative)), ("validate", "{src}"), 1, "E015")
      for relative in ("meta/info.json", "meta/episodes.jsonl", "meta/episodes_stats.jsonl",
                       "data/chunk-000/episode_000001.parquet",
                       "videos/chunk-000/observation.images.cam/episode_000001.mp4", "data/chunk-000")],
    Case("lerobot: a link out, trusted", _lerobot(change=_linked("meta/episodes.jsonl")),
         ("validate", "{src}", "--trusted"), 0, "valid"),
    *[Case(f"lerobot: {relative} is a FIFO", _lerobot(change=_fifo(relative)), ("validate", "{src}"), 2, "FIFO")
      for relative in ("meta/episodes.jsonl", "data/chunk-000/episode_000000.parquet")],
    Case("lerobot 3.0: meta/episodes is a link out", _lerobot_v30(_linked("meta/episodes")), ("info", "{src}"), 1,
         "E015"),
    Case("lerobot 3.0: an episodes parquet is a link out", _lerobot_v30(_linked(
        "meta/episodes/chunk-000/file-000.parquet")), ("info", "{src}"), 1, "E015"),
    Case("lerobot: a partial download's complete episodes are selected whole", _lerobot(videos=(1,)),
         ("select", "{src}", "{tmp}/one.zarr", "--episodes", "1"), 0, "wrote", creates=("one.zarr",)),
    Case("lerobot: info on a partial download says which episodes are complete", _lerobot(videos=(1,)),
         ("info", "{src}", "--no-digest"), 0, "episodes whose videos are all there: 1"),
]


def _text_action(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in (folder / "data" / "chunk-000").glob("*.parquet"):
        table = pq.read_table(file)
        table = table.set_column(table.column_names.index("action"), "action", pa.array(["x"] * table.num_rows))
        pq.write_table(table, file)


RLDS = [
    Case("rlds: features.json is not JSON", _rlds(_write("features.json", "{")), ("info", "{src}"), 2,
         "not valid JSON"),
    Case("rlds: features.json nested 10,000 deep", _rlds(_write("features.json", "{\"featuresDict\": " +
                                                                _nested_json(10_000) + "}")),
         ("info", "{src}"), 2, "nests deeper"),
    Case("rlds: an unknown dtype", _rlds(_features(_feature(_STEPS + ["action", "tensor", "dtype"], "complex128"))),
         ("info", "{src}"), 2, "complex128"),
    Case("rlds: a dimension of text", _rlds(_features(_feature(_STEPS + ["action", "tensor", "shape"],
                                                               {"dimensions": ["seven"]}))),
         ("info", "{src}"), 2, "whole sizes"),
    Case("rlds: an image leaf of 10^12 pixels", _rlds(_features(_feature(
        _STEPS + ["observation", "featuresDict", "features", "image_0", "image", "shape"],
        {"dimensions": ["1000000", "1000000", "3"]}))), ("info", "{src}"), 2, "at most", memory=True),
    Case("rlds: no action", _rlds(_features(lambda f: f["featuresDict"]["features"]["steps"]["sequence"]["feature"]
                                            ["featuresDict"]["features"].pop("action"))),
         ("info", "{src}"), 2, "declares no 'steps/action'"),
    Case("rlds: action declared as text", _rlds(_features(_feature(_STEPS + ["action", "tensor", "dtype"], "string"))),
         ("info", "{src}"), 2, "int64_list" if False else "stored as float_list"),
    Case("rlds: a lone shard of two", _rlds(_shard_named("bridge_dataset-train.tfrecord-00000-of-00002")),
         ("info", "{src}"), 2, "E018"),
    Case("rlds: features.json is a link out", _rlds(_linked("features.json")), ("info", "{src}"), 1, "E015"),
    Case("rlds: a shard is a link out", _rlds(_linked(_TRAIN)), ("info", "{src}"), 1, "E015"),
    Case("rlds: a shard is a FIFO", _rlds(_fifo(_TRAIN)), ("info", "{src}"), 2, "FIFO"),
]

MINARI = [
    Case("minari: episode_3 and episode_0003", _copy(MINARI_HDF5, lambda p, t: _h5_group_renamed(
        "episode_3", "episode_0003")(p / "data" / "main_data.hdf5", t), "m-v0"), ("info", "{src}"), 2, "E019"),
    Case("minari arrow: folders 3 and 03", _copy(MINARI_ARROW, _arrow_folder_copied("3", "03"), "a-v0"),
         ("info", "{src}"), 2, "E019"),
    Case("minari: data/ is a link out", _copy(MINARI_HDF5, _linked("data"), "m-v0"), ("info", "{src}"), 1, "E015"),
    Case("minari arrow: an episode folder is a link out", _copy(MINARI_ARROW, _linked("data/2"), "a-v0"),
         ("info", "{src}"), 1, "E015"),
    Case("minari arrow: an episode's metadata.json is a link out", _copy(MINARI_ARROW, _linked(
        "data/2/metadata.json"), "a-v0"), ("info", "{src}"), 1, "E015"),
    Case("minari: metadata nested 10,000 deep", _copy(MINARI_HDF5, _write("data/metadata.json",
                                                                            _nested_json(10_000)), "m-v0"),
         ("info", "{src}"), 2, "nests deeper"),
    Case("minari: a space nested 10,000 deep", _copy(MINARI_HDF5, lambda p, t: h.edit_json(
        p / "data" / "metadata.json", lambda m: m.update(observation_space=_nested_json(10_000))), "m-v0"),
        ("info", "{src}"), 2, "nests deeper"),
]

OTHERS = [
    Case("robomimic: demo_1 and demo_01", _made(lambda p: h.robomimic(p, ("demo_0", "demo_1", "demo_01")),
                                                name="r.hdf5"), ("validate", "{src}"), 2, "E019"),
    Case("robomimic: num_samples 999 for 5 steps", _made(lambda p: h.robomimic(p, num_samples=999), name="r.hdf5"),
         ("validate", "{src}"), 2, "E018"),
    Case("robomimic: a mask linked out", _made(h.robomimic, lambda p, t: h.with_h5_external_link(p, "mask/train", t),
                                               name="r.hdf5"), ("validate", "{src}"), 1, "E015"),
    Case("robomimic: an action array linked out", _made(h.robomimic, lambda p, t: h.with_h5_external_link(
        p, "data/demo_1/actions", t), name="r.hdf5"), ("info", "{src}"), 1, "E015"),
    Case("robomimic: env_args nested 10,000 deep", _made(h.robomimic, lambda p, t: _h5_attr(
        p, "data", "env_args", _nested_json(10_000)), name="r.hdf5"), ("info", "{src}"), 2, "nests deeper"),
    Case("d4rl: observations linked out", _made(h.d4rl, lambda p, t: h.with_h5_external_link(p, "observations", t),
                                                name="d.hdf5"), ("info", "{src}"), 1, "E015"),
    Case("d4rl: terminals linked out", _made(h.d4rl, lambda p, t: h.with_h5_external_link(p, "terminals", t),
                                             name="d.hdf5"), ("convert", "{src}", "{tmp}/o.zarr"), 1, "E015"),
    Case("diffusion_policy: a 2.4 GB episode_ends", _made(h.diffusion_policy, _dp_ends_bomb, name="dp.zarr"),
         ("info", "{src}"), 2, "at most 268,435,456 are decompressed", memory=True),
    Case("diffusion_policy: our export of an SB2 file reads back", _made(h.diffusion_policy, name="dp.zarr"),
         ("validate", "{src}"), 0, "valid"),
    Case(".npz: a byte flipped in a stored member is not converted", _npz_flipped,
         ("convert", "{src}", "{tmp}/o.zarr"), 2, "CRC-32"),
    Case(".npz: metadata a 1-d object array", _npz_metadata(np.array([{"a": 1}], dtype=object)),
         ("info", "{src}"), 2, "not one text of JSON"),
    Case(".npz: metadata a number", _npz_metadata(np.float64(3.5)), ("info", "{src}"), 2, "not one text of JSON"),
    Case(".h5: a garbage superblock", _garbage_h5, ("info", "{src}"), 2, "not a readable HDF5 file"),
    Case("plot of zero transitions", _empty_dataset, ("plot", "{src}", "--out", "{tmp}/z.png"), 2, "no transitions"),
    Case("--storage-options nested deeply", _empty_dataset, ("--storage-options", _nested_json(1000), "info", "{src}"),
         2, "nests deeper"),
]


def _h5_attr(path: Path, group: str, name: str, value: str) -> None:
    with h5py.File(path, "a") as f:
        f[group].attrs[name] = value


CARDS_AND_WRITES = [
    Case("card: YAML aliases (a billion laughs)", _made(lambda p: expertdata.convert(h.CARTPOLE, p).path,
                                                        _card_bomb, "c.zarr"), ("card", "{src}"), 2, "aliases",
         memory=True),
    Case("card: YAML nested 5,000 deep", _made(lambda p: expertdata.convert(h.CARTPOLE, p).path, _card_deep,
                                               "c.zarr"), ("card", "{src}"), 2, "nests deeper"),
    Case("card: a 2 GiB README", _made(lambda p: expertdata.convert(h.CARTPOLE, p).path,
                                       lambda p, t: _sparse("README.md", 2**31)(p, t), "c.zarr"),
         ("card", "{src}"), 2, "at most", memory=True),
    Case("card: escape sequences in a README are printed escaped", _made(
        lambda p: expertdata.convert(h.CARTPOLE, p).path, _card_escapes, "c.zarr"), ("card", "{src}"), 0,
        "\\x1b"),
    Case("card: a README beside a dataset that is a link out", _made(
        lambda p: expertdata.convert(h.CARTPOLE, p).path, lambda p, t: _readme_link(p, t), "c.npz"),
        ("card", "{src}"), 1, "E015"),
    Case("card: a Zarr store holding a file of its own is not rewritten", _made(
        lambda p: expertdata.convert(h.CARTPOLE, p).path, _write("notes.txt", "mine"), "c.zarr"),
        ("card", "{src}", "--license", "MIT"), 2, "notes.txt"),
    Case("select into the input itself", _select_into_input, ("select", "{src}", "{src}", "--episodes", "0",
                                                              "--overwrite"), 2, "is the input"),
    Case("select into a folder inside the input", _select_into_input, ("select", "{src}", "{src}/inner.zarr",
                                                                       "--episodes", "0"), 2, "lies inside"),
    Case("merge onto one of its inputs", _two_zarr, ("merge", "{a}", "{b}", "{a}", "--overwrite"), 2,
         "is the input"),
    Case("merge into a folder inside an input", _two_zarr, ("merge", "{a}", "{b}", "{b}/m.zarr"), 2, "lies inside"),
    Case("convert into a folder inside its input", _select_into_input, ("convert", "{src}", "{src}/c.h5"), 2,
         "lies inside"),
    Case("convert --to lerobot into its input", _select_into_input, ("convert", "{src}", "{src}", "--to", "lerobot",
                                                                     "--overwrite"), 2, "is the input"),
]


def _readme_link(path: Path, tmp: Path) -> None:
    (h.outside(tmp) / "README.md").write_text("---\nlicense: mit\n---\n" + h.SECRET)
    os.symlink(h.outside(tmp) / "README.md", path.with_name(path.name + ".README.md"))


CASES = LEROBOT + RLDS + MINARI + OTHERS + CARDS_AND_WRITES


def _run(args: list[str], tmp: Path, memory: bool) -> tuple[int, str, str, int | None]:
    """The command's exit code, output and error, and (``memory``) its peak resident bytes in a fresh process."""
    if not memory:
        result = CliRunner().invoke(main, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, result.stdout, result.stderr, None
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, from the test's own process.
    code = ("import re, sys\nfrom expertdata.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
            "    peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]\n"
            "    print(f'PEAK {int(peak) * 1024}', file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=tmp)
    lines = run.stderr.splitlines()
    peak = int(lines[-1].split()[1])
    return run.returncode, run.stdout, "".join(line + "\n" for line in lines[:-1]), peak


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_peer_inputs(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    where = {k: str(v) for k, v in case.build(tmp_path).items()}
    before = snapshot(tmp_path)
    args = [arg.format(tmp=tmp_path, **where) for arg in case.args]
    code, out, err, peak = _run(args, tmp_path, case.memory)
    both = out + err
    assert code == case.code, (out, err)
    assert "Traceback" not in both and "\x1b" not in both and "internal error" not in both, both
    assert h.SECRET not in both
    if case.code and args[0] == "validate":
        assert all(": error: E" in line for line in err.splitlines()), err
    elif case.code:
        assert err.count("\n") == 1 and err.startswith("expertdata: error: "), err
    assert case.says in both, (out, err)
    if peak is not None:
        assert peak < MEMORY_BOUND, f"peak memory {peak / 2**20:.0f} MiB"
    after = snapshot(tmp_path)
    created = {k for k in after if k not in before and not any(k.startswith(c) for c in case.creates)}
    assert not created, created
    assert {k: v for k, v in after.items() if k in before} == before  # the input and its neighbours unchanged


# -- random damage to every peer format ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def peer_files(tmp_path_factory) -> dict[str, Path]:
    """A small valid dataset of every peer format, each as its project lays one out."""
    folder = tmp_path_factory.mktemp("peers")
    return {"lerobot 2.1": h.lerobot21(folder / "lr", episodes=2, frames=4),
            "lerobot 3.0": h.copy_of(LEROBOT30, folder, "v30"),
            "rlds": h.rlds_small(folder / "bridge"),
            "minari hdf5": h.copy_of(MINARI_HDF5, folder, "m-v0"),
            "minari arrow": h.copy_of(MINARI_ARROW, folder, "a-v0"),
            "robomimic": h.robomimic(folder / "r.hdf5"),
            "d4rl": h.d4rl(folder / "d.hdf5"),
            "diffusion_policy": h.diffusion_policy(folder / "dp.zarr"),
            "imitation": h.copy_of(IMITATION, folder)}


class _TooLong(Exception):
    pass


def _alarm(signum, frame):
    raise _TooLong()


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["lerobot 2.1", "lerobot 3.0", "rlds", "minari hdf5", "minari arrow", "robomimic",
                              "d4rl", "diffusion_policy", "imitation"]), data=st.data())
def test_random_damage_to_peer_files_is_one_line_in_bounded_time(peer_files, tmp_path_factory, which, data):
    """Bytes of any file of a valid peer dataset flipped, cut off or zeroed at random (HDF5 files inside their chunk
    data only: see docs/security.md): validate reports, and reading every value either works or raises one of our
    one-line errors, each within 20 seconds."""
    import signal

    folder = tmp_path_factory.mktemp("fuzz")
    source = peer_files[which]
    path = h.copy_of(source, folder)
    target = data.draw(st.sampled_from(_files(path)))
    raw = bytearray(target.read_bytes())
    inside = _chunk_bytes(target) if target.suffix in (".hdf5", ".h5") else None
    for _ in range(data.draw(st.integers(1, 4))):
        where = range(len(raw)) if inside is None else [offset for offset in inside if offset < len(raw)]
        if not where:
            break
        at = data.draw(st.sampled_from(where))
        action = data.draw(st.sampled_from(["flip", "cut", "zero"]))
        if action == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at:]
        else:
            raw[at:at + 8] = bytes(len(raw[at:at + 8]))
    target.write_bytes(bytes(raw))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        assert expertdata.validate(path).exit_code in (0, 1, 2)
        try:
            with expertdata.load(path) as loaded:
                expertdata.digest(loaded)
        except expertdata.ExpertDataError as exc:
            assert "\n" not in str(exc)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    gc.collect()  # see test_hostile's fuzzer: finalisers of failed reads run here, not in a later compile
