"""What did I receive, and how does it differ: per-episode digests, verify, diff, select and merge."""
import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import expertdata
from expertdata.core.digest import digests
from expertdata.core.editing import choose, merged
from expertdata.tools.diff import diff

from .conftest import invoke

CARTPOLE = Path(__file__).resolve().parents[1] / "fixtures" / "cartpole.npz"
PENDULUM = Path(__file__).resolve().parents[1] / "fixtures" / "pendulum.npz"


def cli(*args):
    return invoke(*args)


@pytest.fixture
def sent(tmp_path):
    """CartPole's fixture as a sender writes it (with its digest and per-episode digests)."""
    return expertdata.convert(CARTPOLE, tmp_path / "sent.zarr")


def _damage(path, row, column=1, by=0.25):
    obs = zarr.open_group(str(path), mode="a")["obs"]
    values = obs[:]
    values[row, column] += by
    obs[:] = values


def test_per_episode_digests_are_recorded_and_do_not_depend_on_other_episodes(sent):
    with expertdata.load(sent.path) as data:
        recorded = data.metadata["episode_digests"]
        assert len(recorded) == data.n_episodes == 10 and all(len(d) == 32 for d in recorded)
        _, chosen = digests(data.take([2, 5, 9]), None)
        assert chosen == [recorded[2], recorded[5], recorded[9]]


def test_verify_names_the_episodes_that_differ_and_checks_chosen_ones_alone(sent):
    _damage(sent.path, row=2600)  # in episode 5
    result = cli("verify", sent.path, "--digest", sent.digest)
    assert result.returncode == 1 and result.stderr.strip().endswith("1 episode differs: 5")
    assert cli("verify", sent.path, "--digest", sent.digest, "--episodes", "0-4,6-9").returncode == 0
    partial = cli("verify", sent.path, "--digest", sent.digest, "--episodes", "4-6")
    assert partial.returncode == 1 and "episode 5 differs from the digests recorded" in partial.stderr
    report = expertdata.validate(sent.path)
    assert [p.rule.id for p in report.errors] == ["E017"] and report.errors[0].message.endswith("1 episode differs: 5")


def test_diff_reports_identical_content_across_formats_and_what_changed(sent, tmp_path):
    same = cli("diff", sent.path, CARTPOLE)
    assert same.returncode == 0 and same.stdout.splitlines()[-1] == "identical content"
    _damage(sent.path, row=700)  # episode 1
    changed = cli("diff", CARTPOLE, sent.path)
    assert changed.returncode == 1
    assert "episodes changed: 1" in changed.stdout and "  episode 1: obs (largest difference 0.25)" in changed.stdout
    as_json = json.loads(cli("diff", CARTPOLE, sent.path, "--json").stdout)
    assert as_json["changed"] == 1 and as_json["changes"][0]["fields"] == {"obs": 0.25}


def test_diff_matches_moved_episodes_and_names_the_rest(sent):
    with expertdata.load(sent.path) as data:
        reordered = data.take([0, 1, 2, 3, 4, 6, 7, 8, 9])
        result = diff(data, merged([reordered, data.take([5])]))
        assert not result.identical and result.n_changed == 0 and result.moved == 5
        assert result.only_a == result.only_b == []
        shorter = diff(data, data.take(np.arange(7)))
        assert shorter.only_a == [7, 8, 9] and shorter.only_b == [] and shorter.moved == 0
        with expertdata.load(PENDULUM) as other:
            metadata = diff(data, other).metadata
        assert {"env_id", "observation_space", "action_space"} <= set(metadata)


def test_select_by_episodes_returns_lengths_and_splits_records_its_parent(sent, tmp_path):
    with expertdata.load(sent.path) as data:
        returns = np.asarray(data["episode_returns"][:])
        lengths = data.episodes.lengths
        assert choose(data, episodes="0-2,8").tolist() == [0, 1, 2, 8]
        high = choose(data, min_return=float(np.median(returns)))
        assert high.tolist() == np.flatnonzero(returns >= np.median(returns)).tolist()
        assert choose(data, max_length=int(lengths.min())).tolist() == np.flatnonzero(lengths == lengths.min()).tolist()
    result = cli("select", sent.path, tmp_path / "part.h5", "--episodes", "1-3", "--min-length", "1")
    assert result.returncode == 0
    with expertdata.load(tmp_path / "part.h5") as part, expertdata.load(sent.path) as data:
        assert part.n_episodes == 3 and part.metadata["episode_digests"] == data.metadata["episode_digests"][1:4]
        entry = part.metadata["lineage"][-1]
        assert entry["operation"] == "select" and entry["parent_digest"] == sent.digest
        assert entry["criteria"] == {"episodes": "1-3", "min_length": 1} and entry["episodes"] == 3
    bad = cli("select", sent.path, tmp_path / "none.h5", "--min-return", "1e9")
    assert bad.returncode == 2 and "no episode meets the criteria" in bad.stderr and not (tmp_path / "none.h5").exists()
    out_of_range = cli("select", sent.path, tmp_path / "none.h5", "--episodes", "3-12")
    assert out_of_range.returncode == 2 and "outside the dataset's episodes 0-9" in out_of_range.stderr


def test_merge_concatenates_matching_datasets_and_refuses_others(sent, tmp_path):
    first = cli("select", sent.path, tmp_path / "a.npz", "--episodes", "0-4")
    second = cli("select", sent.path, tmp_path / "b.h5", "--episodes", "5-9")
    assert first.returncode == second.returncode == 0
    merged_file = cli("merge", tmp_path / "a.npz", tmp_path / "b.h5", tmp_path / "all.zarr")
    assert merged_file.returncode == 0
    with expertdata.load(tmp_path / "all.zarr") as whole:
        assert expertdata.digest(whole) == sent.digest  # the halves put back together are the whole
        parents = whole.metadata["lineage"][-1]["parents"]
        assert [p["source"] for p in parents] == ["a.npz", "b.h5"] and [p["episodes"] for p in parents] == [5, 5]
    refused = cli("merge", sent.path, PENDULUM, tmp_path / "mixed.zarr")
    assert refused.returncode == 2 and refused.stderr.startswith("expertdata: error: observation spaces differ")
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "mixed.zarr").exists()


def test_a_card_is_edited_without_changing_the_content_and_travels_with_conversions(sent, tmp_path):
    assert "no card" in cli("card", sent.path).stdout
    edited = cli("card", sent.path, "--license", "cc-by-4.0", "--author", "A. Lab", "--author", "B. Lab",
                 "--description", "CartPole by a hand-written controller", "--tag", "cartpole")
    assert edited.returncode == 0 and "CC-BY-4.0" in edited.stdout
    assert cli("verify", sent.path, "--digest", sent.digest).returncode == 0  # the card is not the content
    readme = (sent.path / "README.md").read_text()
    assert readme.startswith('---\nlicense: "cc-by-4.0"\ntags: ["cartpole"]\n') and "- 10 episodes, 5,000" in readme
    report = expertdata.validate(sent.path)
    assert report.problems == ()  # W109 is gone with the licence
    copy = expertdata.convert(sent.path, tmp_path / "copy.npz")
    assert (tmp_path / "copy.npz.README.md").is_file()
    assert json.loads(cli("card", copy.path, "--json").stdout)["authors"] == ["A. Lab", "B. Lab"]
    bad = cli("card", sent.path, "--license", "not-a-licence")
    assert bad.returncode == 2 and "is not an SPDX licence expression" in bad.stderr and bad.stderr.count("\n") == 1
    assert json.loads(cli("card", sent.path, "--json").stdout)["license"] == "CC-BY-4.0"


def test_a_hub_style_readme_is_read_as_the_card_where_the_metadata_has_none(tmp_path):
    folder = expertdata.convert(CARTPOLE, tmp_path / "hub.zarr").path
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- robotics\n---\n# A dataset from the Hub\n")
    assert json.loads(cli("card", folder, "--json").stdout) == {"license": "Apache-2.0", "tags": ["robotics"]}
    assert expertdata.validate(folder).errors == ()  # zarr passes over the README
