"""Each validation rule fires on the data it names, with its id, the field and the first position."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import expertdata
from expertdata import spaces
from expertdata.core import schema

from .conftest import make_arrays

BOX2 = {"type": "Box", "shape": [2], "dtype": "<f4", "low": -1.0, "high": 1.0}


def _validate(tmp_path, metadata=None, licence_warning=False, **changes):
    """Write the arrays as a raw .npz (bypassing our writer) and validate the file; the warning that it names
    no licence (none of these files has a card) is left out unless asked for (it is tested on its own)."""
    arrays = {k: v for k, v in {**make_arrays(lengths=(5, 3, 4)), **changes}.items() if v is not None}
    if metadata is not None:
        arrays["expertdata_metadata"] = np.array(json.dumps(metadata))
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    report = expertdata.validate(path)
    return report if licence_warning else dataclasses.replace(
        report, problems=tuple(p for p in report.problems if p.rule.id != "W109"))


def _ids(report):
    return sorted(p.rule.id for p in report.problems)


def test_a_good_dataset_is_valid(tmp_path):
    report = _validate(tmp_path, {"card": {"license": "MIT"}})
    assert report.ok and report.exit_code == 0 and report.problems == ()


def test_a_dataset_without_a_licence_is_warned_about(tmp_path):
    for metadata in (None, {"card": {"authors": ["A. Lab"]}}):
        report = _validate(tmp_path, metadata, licence_warning=True)
        assert [p.one_line() for p in report.problems] == [
            "W109 no-licence: dataset: the dataset's card names no licence (expertdata card PATH --license SPDX-ID)"]
        assert report.exit_code == 0
    assert "E013" in _ids(_validate(tmp_path, {"card": {"license": "not-a-licence"}}))


def test_missing_field(tmp_path):
    report = _validate(tmp_path, rewards=None)
    assert _ids(report) == ["E001"] and report.problems[0].field == "rewards" and report.exit_code == 1


def test_object_array_is_reported_without_unpickling(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **{**make_arrays(), "obs": np.array([{"x": 1}] * 8, dtype=object)})
    report = expertdata.validate(path)
    assert "E002" in _ids(report) and report.exit_code == 1
    assert any("unpickling" in p.message for p in report.problems)


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    arrays = make_arrays(lengths=(5, 3, 4))
    rewards = arrays["rewards"].copy()
    rewards[6] = np.nan
    report = _validate(tmp_path, rewards=rewards, actions=arrays["actions"][:-1],
                       episode_returns=arrays["episode_returns"] + 1.0)
    assert {"E004", "E007"} <= set(_ids(report))


def test_returns_must_match_rewards(tmp_path):
    arrays = make_arrays(lengths=(5, 3, 4))
    returns = arrays["episode_returns"].copy()
    returns[1] += 0.5
    report = _validate(tmp_path, episode_returns=returns)
    assert _ids(report) == ["E003"]
    assert report.problems[0].position == 1 and report.problems[0].field == "episode_returns"


def test_first_step_must_open_an_episode(tmp_path):
    arrays = make_arrays(lengths=(5, 3, 4))
    starts = arrays["episode_starts"].copy()
    starts[0] = False
    report = _validate(tmp_path, episode_starts=starts, episode_returns=arrays["episode_returns"][1:])
    assert "E005" in _ids(report)


def test_episode_count_must_match_returns(tmp_path):
    report = _validate(tmp_path, episode_returns=make_arrays(lengths=(5, 3, 4))["episode_returns"][:2])
    assert "E006" in _ids(report)


def test_non_finite_values_name_the_row(tmp_path):
    obs = make_arrays(lengths=(5, 3, 4))["obs"].copy()
    obs[7, 2] = np.inf
    obs[9, 0] = np.nan
    (problem,) = _validate(tmp_path, obs=obs).problems
    assert (problem.rule.id, problem.field, problem.position, problem.count) == ("E007", "obs", 7, 2)


def test_action_shape_must_fit_the_declared_space(tmp_path):
    report = _validate(tmp_path, {"action_space": {**BOX2, "shape": [3]}})
    assert _ids(report) == ["E008"]


def test_observation_shape_must_fit_the_declared_space(tmp_path):
    report = _validate(tmp_path, {"observation_space": {"type": "Box", "shape": [4], "dtype": "<f4",
                                                        "low": "-inf", "high": "inf"}})
    assert _ids(report) == ["E009"]


def test_discrete_values_outside_the_space_are_errors(tmp_path):
    actions = make_arrays(lengths=(5, 3, 4), actions="discrete")["actions"].copy()
    actions[4] = 7
    report = _validate(tmp_path, {"action_space": {"type": "Discrete", "n": 2, "start": 0}}, actions=actions)
    assert _ids(report) == ["E012"] and report.problems[0].position == 4


def test_box_values_outside_the_bounds_are_warnings(tmp_path):
    actions = make_arrays(lengths=(5, 3, 4))["actions"].copy()
    actions[2] = 3.0
    report = _validate(tmp_path, {"action_space": BOX2}, actions=actions)
    assert _ids(report) == ["W103"] and report.ok and report.exit_code == 0


def test_bad_metadata(tmp_path):
    report = _validate(tmp_path, {"schema_version": "9.0", "action_space": {"type": "Dict"}, "colour": 1})
    assert _ids(report) == ["E013", "E013", "E013"]


def test_flags_only_on_the_last_step_of_an_episode(tmp_path):
    terminated = np.zeros(12, dtype=bool)
    terminated[[2, 4, 7, 11]] = True
    (problem,) = _validate(tmp_path, terminated=terminated).problems
    assert (problem.rule.id, problem.field, problem.position) == ("E014", "terminated", 2)


def test_unreadable_file_has_exit_code_2(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    report = expertdata.validate(path)
    assert _ids(report) == ["E100"] and report.exit_code == 2


def test_image_paths_must_exist_and_stay_inside(tmp_path):
    obs = np.array([f"img/{i}.png" for i in range(12)])
    (tmp_path / "img").mkdir()
    for i in range(11):
        (tmp_path / "img" / f"{i}.png").write_bytes(b"x")
    obs[3] = "../outside.png"
    report = _validate(tmp_path, obs=obs)
    assert _ids(report) == ["E010", "E011"]
    missing, escaping = sorted(report.problems, key=lambda p: p.rule.id)
    assert missing.position == 11 and escaping.position == 3


def test_last_episode_cut_is_a_warning(tmp_path):
    report = _validate(tmp_path, **make_arrays(lengths=(5, 5, 2)))
    assert _ids(report) == ["W101"] and report.exit_code == 0
    flags = np.zeros(12, dtype=bool)
    flags[[4, 9]] = True
    assert _ids(_validate(tmp_path, **make_arrays(lengths=(5, 5, 2)), truncated=flags)) == ["W101"]


def test_terminated_at_the_time_limit_is_a_warning(tmp_path):
    terminated = np.zeros(12, dtype=bool)
    terminated[[4, 7, 11]] = True
    report = _validate(tmp_path, {"max_episode_steps": 4}, terminated=terminated)
    assert _ids(report) == ["W102"] and report.problems[0].position == 11


def test_duplicate_episodes_are_a_warning(tmp_path):
    arrays = make_arrays(lengths=(4, 4, 4))
    for name in ("obs", "actions", "rewards"):
        arrays[name][8:12] = arrays[name][0:4]
    arrays["episode_returns"][2] = arrays["episode_returns"][0]
    report = _validate(tmp_path, **arrays)
    assert _ids(report) == ["W104"] and report.problems[0].position == 8


def test_undeclared_fields_are_a_warning_and_declared_extras_are_fine(tmp_path):
    extra = np.arange(12.0)
    assert _ids(_validate(tmp_path, value=extra)) == ["W105"]
    assert _ids(_validate(tmp_path, {"extras": {"value": "step"}}, value=extra)) == []


def test_every_rule_is_documented_with_a_unique_id():
    ids = [r.id for r in schema.RULES]
    assert len(ids) == len(set(ids))
    spec = (__import__("pathlib").Path(__file__).parents[1] / "docs" / "format.md").read_text()
    for rule in schema.RULES:
        assert f"`{rule.id}`" in spec and rule.name in spec, rule.id
    for f in schema.FIELDS:
        assert f"`{f.name}`" in spec, f.name
    assert schema.SCHEMA_VERSION in spec


def test_a_dataset_with_structural_problems_cannot_be_built():
    arrays = make_arrays()
    with pytest.raises(expertdata.InvalidDatasetError, match="E004 length-mismatch: rewards") as err:
        expertdata.Dataset.from_arrays(**{**arrays, "rewards": arrays["rewards"][:-1]})
    assert err.value.problems[0].rule.id == "E004"


def test_space_json_round_trips_through_gymnasium():
    from gymnasium import spaces as gs

    for space in (gs.Box(-1.0, 1.0, (2, 3), np.float32), gs.Box(0, 255, (4, 4, 3), np.uint8),
                  gs.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 1.0]), dtype=np.float64),
                  gs.Discrete(5, start=-2), gs.MultiDiscrete([3, 4]), gs.MultiBinary(6),
                  gs.Dict({"image": gs.Box(0, 255, (4, 4, 3), np.uint8), "arm": gs.Dict({"pos": gs.Box(-1, 1, (3,))})}),
                  gs.Tuple([gs.Discrete(3), gs.Box(-1, 1, (2,))])):
        spec = json.loads(json.dumps(spaces.to_json(space), allow_nan=False))
        assert spaces.to_gymnasium(spec) == space
    with pytest.raises(spaces.SpaceError, match="cannot store a Text space"):
        spaces.to_json(gs.Text(5))
