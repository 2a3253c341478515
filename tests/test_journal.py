"""The journal of a streamed recording: each episode committed with one append, read back after a kill,
never mistaken for another dataset's, and never trusted beyond its own bytes."""
from __future__ import annotations

import os
import shutil

import pytest

import expertdata
from expertdata.io import journal
from expertdata.io.formats.chunked import journal_of
from expertdata.recording.experts import pendulum
from expertdata.recording.recorder import generate_expert_traj

from .test_recording import record_and_kill


@pytest.fixture(scope="module", params=[".zarr", ".h5"])
def killed(request, tmp_path_factory):
    """A Pendulum recording killed in its fourth episode: three episodes committed, all in the journal."""
    out = tmp_path_factory.mktemp("killed") / f"d{request.param}"
    record_and_kill(out)
    return out


@pytest.fixture
def copy(killed, tmp_path):
    """A fresh copy of the killed recording and its journal."""
    out = tmp_path / killed.name
    (shutil.copytree if killed.is_dir() else shutil.copyfile)(killed, out)
    shutil.copyfile(journal_of(killed), journal_of(out))
    return out


def rules(path, trusted=False):
    """The rules a recording breaks, but W109 (recordings carry no card, so no licence)."""
    return [p.rule.id for p in expertdata.validate(path, trusted=trusted).problems if p.rule.id != "W109"]


def episodes(path, trusted=False):
    with expertdata.load(path, trusted=trusted) as kept:
        return kept.n_episodes


def record_offsets(path):
    """Where each of a journal's records starts."""
    data = path.read_bytes()
    offsets, at = [], data.index(b"EDJR")
    while at < len(data):
        offsets.append(at)
        at += int.from_bytes(data[at + 4:at + 12], "little")
    return offsets


def test_the_journal_holds_one_record_per_committed_episode(copy):
    assert len(record_offsets(journal_of(copy))) == 3 and episodes(copy) == 3 and rules(copy) == []


def test_a_record_cut_short_by_the_kill_is_not_a_problem(copy):
    at = journal_of(copy)
    os.truncate(at, at.stat().st_size - 10)
    assert episodes(copy) == 2 and rules(copy) == []


def test_a_damaged_record_is_missing_data_that_is_never_read_silently(copy):
    at = journal_of(copy)
    second = record_offsets(at)[1]
    data = bytearray(at.read_bytes())
    data[second + 200] ^= 0xFF
    at.write_bytes(bytes(data))
    assert rules(copy) == ["E016"]
    with pytest.raises(expertdata.UnreadableError, match="committed after episode 1 are lost: its journal is "
                                                         f"damaged at byte {second:,}"):
        episodes(copy)


def test_a_damaged_length_before_other_records_is_missing_data_not_a_kill(copy):
    """A record that claims more bytes than the file holds was cut by a kill only if it is the last: one whose
    length field is damaged, with the other records after it, loses them, and says so (E016)."""
    at = journal_of(copy)
    data = bytearray(at.read_bytes())
    first = record_offsets(at)[0]
    data[first + 4:first + 12] = (2**60).to_bytes(8, "little")
    at.write_bytes(bytes(data))
    assert rules(copy) == ["E016"]
    with pytest.raises(expertdata.UnreadableError, match=f"its journal is damaged at byte {first:,}"):
        episodes(copy)


def test_a_journal_header_nested_deeply_is_missing_data_not_a_traceback(copy):
    at = journal_of(copy)
    data = at.read_bytes()
    length = int.from_bytes(data[len(journal.MAGIC):len(journal.MAGIC) + 8], "little")
    text = ("[" * 20_000 + "]" * 20_000).encode()
    at.write_bytes(journal.MAGIC + len(text).to_bytes(8, "little") + text + data[len(journal.MAGIC) + 8 + length:])
    assert rules(copy) == ["E016"]


def test_a_journal_that_is_a_fifo_is_refused_not_waited_on(copy):
    at = journal_of(copy)
    at.unlink()
    os.mkfifo(at)
    assert rules(copy) == ["E016"]


def test_a_journal_left_by_another_dataset_is_never_read(copy, tmp_path):
    fresh = tmp_path / "fresh" / copy.name
    generate_expert_traj(pendulum, fresh, "Pendulum-v1", n_episodes=3, seed=0)
    shutil.copyfile(journal_of(copy), journal_of(fresh))  # the same commit counts, another writer's token
    assert episodes(fresh) == 3 and rules(fresh) == []


def test_a_journal_that_is_a_link_is_read_only_when_trusted(copy, tmp_path):
    at = journal_of(copy)
    outside = tmp_path / "elsewhere"
    at.rename(outside)
    at.symlink_to(outside)
    assert rules(copy) == ["E015"] and rules(copy, trusted=True) == []
    with pytest.raises(expertdata.InvalidDatasetError, match="E015 outside-reference: dataset: its journal"):
        episodes(copy)
    assert episodes(copy, trusted=True) == 3


def test_converting_a_killed_recording_keeps_the_journal_episodes_and_needs_no_journal(copy, tmp_path):
    out = tmp_path / "copy.npz"
    expertdata.convert(copy, out)
    assert episodes(out) == 3 and not journal_of(out).exists()


def test_the_journal_format_round_trips_in_isolation(tmp_path):
    import numpy as np

    layout = {"a": (np.dtype(np.float32), (2,)), "b": (np.dtype(np.int64), ())}
    writer = journal.Journal(tmp_path / "j", "token", layout)
    writer.append((0, 0), (2, 1), {"a": [np.ones((2, 2), np.float32)], "b": [np.array([7, 8])]})
    writer.append((2, 1), (3, 2), {"a": [np.zeros((1, 2), np.float32)], "b": [np.array([9])]})
    writer.close()
    reached, rows, problem = journal.read(open(tmp_path / "j", "rb"), "token", layout, (0, 0))
    assert reached == (3, 2) and problem == "" and rows["b"].tolist() == [7, 8, 9]
    assert journal.read(open(tmp_path / "j", "rb"), "token", layout, (2, 1))[1]["b"].tolist() == [9]
    assert journal.read(open(tmp_path / "j", "rb"), "other", layout, (0, 0))[0] == (0, 0)
