"""The command line: readable output, documented exit codes, one-line errors, and nothing half-written."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import expertdata
from expertdata.cli import main

from .conftest import make_arrays, make_dataset, run_cli


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def good(tmp_path) -> Path:
    return expertdata.save(make_dataset(lengths=(6, 6), metadata={"env_id": "Pendulum-v1"}),
                           tmp_path / "good.npz").path


def test_validate_a_good_dataset(good):
    result = CliRunner().invoke(main, ["validate", str(good)])
    assert result.exit_code == 0 and "valid (0 errors, 1 warnings)" in result.output
    assert "W109 no-licence" in result.output


def test_validate_json_gives_one_object_per_problem(tmp_path):
    arrays = make_arrays(lengths=(4, 4))
    arrays["obs"][2, 0] = np.nan
    arrays["episode_returns"][1] += 1
    np.savez(tmp_path / "bad.npz", **arrays)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "bad.npz"), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and report["valid"] is False
    assert sorted((p["rule"], p["field"], p["position"]) for p in report["problems"]) == [
        ("E003", "episode_returns", 1), ("E007", "obs", 2), ("W109", None, None)]


def test_convert_info_and_verify_end_to_end(good, tmp_path):
    out = tmp_path / "out" / "good.zarr"
    result = CliRunner().invoke(main, ["convert", str(good), str(out), "--compression", "zstd:3"])
    assert result.exit_code == 0, result.output
    digest = result.output.strip().split()[-1]
    info = CliRunner().invoke(main, ["info", str(out)])
    assert info.exit_code == 0
    for text in ("zarr", "Pendulum-v1", "transitions", "12", "zstd:3", digest, "lineage: convert from npz"):
        assert text in info.output
    summary = json.loads(CliRunner().invoke(main, ["info", str(out), "--json"]).output)
    assert summary["episodes"] == 2 and summary["episode_lengths"] == {"min": 6, "mean": 6, "max": 6}
    assert summary["fields"]["obs"]["chunks"] and summary["size_on_disk"] > 0
    assert CliRunner().invoke(main, ["verify", str(out), "--digest", digest]).exit_code == 0
    assert CliRunner().invoke(main, ["verify", str(out), "--digest", f" {digest.upper()} "]).exit_code == 0
    wrong = CliRunner().invoke(main, ["verify", str(good), "--digest", "blake3:" + "0" * 64])
    assert wrong.exit_code == 1 and "does not match" in wrong.output
    other = run_cli("verify", good, "--digest", "sha256:" + "0" * 64)
    assert other.returncode == 2 and "a sha256 digest" in other.stderr and "Traceback" not in other.stderr


def test_convert_with_traj_limitation_records_its_parent(good, tmp_path):
    out = tmp_path / "one.h5"
    assert CliRunner().invoke(main, ["convert", str(good), str(out), "--traj-limitation", "1"]).exit_code == 0
    with expertdata.load(out) as ds, expertdata.load(good) as parent:
        assert ds.n_episodes == 1 and ds.n_transitions == 6
        assert ds.metadata["lineage"][-1]["operation"] == "traj_limitation"
        assert ds.metadata["lineage"][-1]["parent_digest"] == expertdata.digest(parent)
    too_many = run_cli("convert", good, tmp_path / "x.h5", "--traj-limitation", "3")
    assert too_many.returncode == 2 and "holds 2 episodes" in too_many.stderr


def test_existing_destination_needs_overwrite(good, tmp_path):
    out = tmp_path / "copy.h5"
    assert CliRunner().invoke(main, ["convert", str(good), str(out)]).exit_code == 0
    again = run_cli("convert", good, out)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert run_cli("convert", good, out, "--overwrite").returncode == 0


def _truncated(tmp_path, good):
    data = good.read_bytes()
    (tmp_path / "bad.npz").write_bytes(data[: len(data) // 2])


def _missing_key(tmp_path, good):
    arrays = make_arrays()
    del arrays["episode_starts"]
    np.savez(tmp_path / "bad.npz", **arrays)


def _mismatched(tmp_path, good):
    arrays = make_arrays()
    np.savez(tmp_path / "bad.npz", **{**arrays, "actions": arrays["actions"][:-2]})


def _pickled(tmp_path, good):
    np.savez(tmp_path / "bad.npz", **{**make_arrays(), "actions": np.array([object()] * 8)})


def _escaping(tmp_path, good):
    np.savez(tmp_path / "bad.npz", **{**make_arrays(), "obs": np.array(["../../etc/passwd"] * 8)})


def _not_a_dataset(tmp_path, good):
    (tmp_path / "bad.npz").mkdir()
    (tmp_path / "bad.npz" / "notes.txt").write_text("hello")


@pytest.mark.parametrize("make_bad,code,message", [
    (_truncated, 2, "not a readable .npz"),
    (_missing_key, 1, "E001 missing-field: episode_starts"),
    (_mismatched, 1, "E004 length-mismatch: actions"),
    (_pickled, 1, "unpickling"),
    (_escaping, 1, "E011 image-path-escapes"),
    (_not_a_dataset, 2, "not a dataset"),
])
def test_bad_input_gets_one_line_the_exit_code_and_no_output(tmp_path, good, make_bad, code, message):
    make_bad(tmp_path, good)
    bad = tmp_path / "bad.npz"
    before = sorted(tmp_path.iterdir())
    for args in (["convert", bad, tmp_path / "out.zarr"], ["info", bad], ["verify", bad, "--digest", "x"]):
        result = run_cli(*args)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    validation = run_cli("validate", bad)
    assert validation.returncode == code and message in validation.stdout + validation.stderr
    assert "Traceback" not in validation.stderr
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("exception", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failed_conversion_leaves_nothing_and_never_touches_the_source(tmp_path, good, monkeypatch, exception):
    from expertdata.io.formats import chunked

    source_bytes = hashlib.sha256(good.read_bytes()).hexdigest()
    calls = []

    def failing_append(self, name, block):
        calls.append(name)
        if len(calls) == 3:
            raise exception

    monkeypatch.setattr(chunked.ChunkedSink, "append", failing_append)
    with pytest.raises(type(exception)):
        expertdata.convert(good, tmp_path / "out.zarr")
    assert _files(tmp_path) == ["good.npz"]
    assert hashlib.sha256(good.read_bytes()).hexdigest() == source_bytes


def test_a_digest_mismatch_fails_the_conversion(tmp_path, good, monkeypatch):
    from expertdata.io.formats import chunked

    real_append = chunked.ChunkedSink.append

    def corrupting_append(self, name, block):
        real_append(self, name, block[::-1] if name == "rewards" else block)

    monkeypatch.setattr(chunked.ChunkedSink, "append", corrupting_append)
    with pytest.raises(expertdata.DigestMismatchError, match="nothing was written"):
        expertdata.convert(good, tmp_path / "out.h5")
    assert _files(tmp_path) == ["good.npz"]


def _corrupt_chunk(path: Path) -> None:
    chunk = next(p for p in sorted((path / "obs").rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage" * 3)


def test_damaged_hdf5_and_zarr_are_unreadable_not_tracebacks(tmp_path, good):
    h5 = expertdata.convert(good, tmp_path / "d.h5").path
    h5.write_bytes(h5.read_bytes()[:2000])
    zarr = expertdata.convert(good, tmp_path / "d.zarr").path
    _corrupt_chunk(zarr)
    for bad in (h5, zarr):
        for args in (["validate", bad], ["convert", bad, tmp_path / "out.npz"], ["info", bad]):
            result = run_cli(*args)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr and str(bad) in result.stdout + result.stderr
    assert not (tmp_path / "out.npz").exists()


def test_record_validate_convert_from_the_command_line(tmp_path):
    out = tmp_path / "pendulum.zarr"
    result = run_cli("record", "Pendulum-v1", "--expert", "pendulum", "--episodes", "4", "--out", out,
                     "--num-envs", "2")
    assert result.returncode == 0, result.stderr
    assert "4 episodes, 800 transitions" in result.stdout
    serial = run_cli("record", "Pendulum-v1", "--expert", "expertdata.recording.experts:pendulum", "--episodes", "4",
                 "--out", tmp_path / "serial.h5")
    assert serial.returncode == 0, serial.stderr
    assert expertdata.digest(expertdata.load(out)) == expertdata.digest(expertdata.load(tmp_path / "serial.h5"))
    again = run_cli("record", "Pendulum-v1", "--expert", "pendulum", "--episodes", "1", "--out", out)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    bad = run_cli("record", "CartPole-v1", "--expert", "pendulum", "--episodes", "1", "--out", tmp_path / "x.npz")
    assert bad.returncode == 1 and "episode 0 (seed 0), step 0: the expert raised" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.npz").exists()


def test_every_command_explains_itself():
    """``--help`` names every command with a summary that is not cut off, every command's help ends with
    an example, and every option says what it does."""
    import click

    runner, ctx = CliRunner(), click.Context(main)
    listing = runner.invoke(main, ["--help"]).output
    names = main.list_commands(ctx)
    assert {"convert", "info", "plot", "record", "train", "validate", "verify"} <= set(names)
    for name in names:
        line = next(line for line in listing.splitlines() if line.strip().startswith(name + " "))
        assert not line.rstrip().endswith("..."), line
        command = main.get_command(ctx, name)
        subcommands = [command.get_command(ctx, n) for n in command.list_commands(ctx)] if name == "train" else []
        for each, args in [(command, [name])] + [(sub, [name, sub.name]) for sub in subcommands]:
            assert "Example:" in runner.invoke(main, args + ["--help"]).output, args
            assert all(p.help for p in each.params if isinstance(p, click.Option) and p.name != "help"), args


def test_validate_reads_as_the_docs_show(tmp_path):
    """Numbers as numbers, problems in the order of their rule ids, singular and plural right."""
    arrays = make_arrays((2, 2))
    arrays["rewards"] = np.array([0.5, 0.5, 1.0, 0.5])
    arrays["episode_returns"] = np.array([1.0, 2.5])
    arrays["obs"][2] = np.nan
    path = expertdata.save(expertdata.Dataset.from_arrays({}, None, **arrays), tmp_path / "bad.npz").path
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}: error: E003 episode-returns-mismatch: episode_returns[1]: the return of 1 episode differs from "
        "the sum of its rewards (episode 1: 2.5 vs 1.5)",
        f"{path}: error: E007 non-finite: obs[2]: 1 row holds NaN or infinity"]
    documented = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert all(line.replace(str(path), "bad.npz") in documented for line in result.stderr.splitlines())


def test_errors_name_python_arguments_in_python_and_options_on_the_command_line(good, tmp_path):
    out = tmp_path / "out.zarr"
    expertdata.convert(good, out)
    with pytest.raises(expertdata.UsageError) as caught:
        expertdata.convert(good, out)
    assert "overwrite=True" in str(caught.value) and "--overwrite" not in str(caught.value)
    result = CliRunner().invoke(main, ["convert", str(good), str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.stderr and "overwrite=True" not in result.stderr
