"""Loading, saving and converting datasets: streamed block by block, atomic, checked by digest."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import numpy as np
from tqdm.auto import tqdm

from ..core import cards, editing, images
from ..core.arrays import block_rows, first_rows, iter_blocks, prefetch, row_bytes
from ..core.dataset import Dataset
from ..core.digest import MAX_EPISODE_DIGESTS, PREFIX, Digester, digest, digests, episode_digester
from ..core.errors import DigestMismatchError, ExpertDataError, UnreadableError, UsageError
from ..core.rules import problems_found, raise_for
from ..core.schema import SCHEMA_VERSION
from . import atomic, formats, parallel, remote


def load(path: Path | str, format: str | None = None, trusted: bool = False,
         storage_options: dict[str, Any] | None = None, strict: bool = False,
         episodes: Sequence[int] | None = None) -> Dataset:
    """Open a dataset in any format, local or where it lives (an fsspec URL: ``expertdata.io.remote``); HDF5 and
    Zarr arrays (and ``.npz`` members) stay lazy.

    Raises ``UnreadableError`` for a file that cannot be read (or whose header claims data it does not
    hold) and ``InvalidDatasetError`` for one whose structure breaks the schema, or whose data would come
    from outside it unless ``trusted``. Close it (or use it as a context manager) to release the file.
    ``strict`` refuses what reading would skip (``W108``: a peer's video whose files are missing, an object
    array). ``episodes``: only these episodes (positions, increasing), read alone where the format can (a LeRobot
    folder opens only their files: a partial download's complete episodes read whole; an RLDS folder parses only
    their records; a Minari Arrow folder opens only their files), else taken after reading.
    """
    raw = remote.open_raw(path, format, trusted, storage_options, episodes)
    try:
        found = problems_found(raw.findings)
        skipped = [p for p in found if p.rule.name == "not-imported"]
        if strict and skipped:
            raise UnreadableError(f"{path}: {skipped[0].one_line()} (strict: nothing is skipped)")
        raise_for(str(path), found)
        local = remote.local_path(str(path)) if remote.is_url(path) else path
        inputs = (str(path) if local is None else str(formats.locate(local)),)
        again = (load, (path,), {"format": format, "trusted": trusted, "storage_options": storage_options,
                                  "strict": strict, "episodes": None if episodes is None else list(episodes)})
        dataset = Dataset(raw.fields, raw.metadata, raw.root, str(path), raw.format, raw.closer, raw.storage, trusted,
                          tuple(p.one_line() for p in found), inputs, as_recorded=not raw.selected, origin=again)
    except ExpertDataError:
        raw.close()
        raise
    if episodes is None or raw.selected:
        return dataset
    try:
        return replace(dataset.take(episodes, closer=dataset.closer), origin=again)
    except BaseException:
        dataset.close()
        raise


def verify(path: Path | str, expected: str, trusted: bool = False, episodes: str | None = None,
           client: Any = None) -> str:
    """Check that the dataset at ``path`` holds exactly the content whose digest is ``expected`` (with or
    without the ``blake3:`` prefix, in either case); returns the digest, or raises ``DigestMismatchError``
    (naming the episodes that differ where the file records per-episode digests). A digest named for another
    algorithm is a ``UsageError``.

    :param episodes: check only these episodes (``"0-9,20"``), against the per-episode digests recorded with
        the expected digest: a partial download is checked without hashing everything.
    :param client: a Dask client: the episodes are hashed on its workers (the content digest, one sequential hash,
        is the client's); the same answer.
    """
    from ..core.rules import changed_episodes

    expected = expected.strip().lower()
    algorithm, named, _ = expected.partition(":")
    if named and f"{algorithm}:" != PREFIX:
        raise UsageError(f"the expected digest is a {algorithm} digest, but expertdata's digests are BLAKE3 "
                         f"({PREFIX}...); ask the sender for the digest that `expertdata info` shows")
    expected = expected if named else PREFIX + expected
    with load(path, trusted=trusted) as dataset:
        recorded = dataset.metadata.get("episode_digests")
        usable = (dataset.metadata.get("digest") == expected and isinstance(recorded, list)
                  and len(recorded) == dataset.n_episodes)
        if episodes is not None:
            if not usable:
                raise UsageError(f"{path}: checking chosen episodes needs the per-episode digests recorded with "
                                 f"{expected}, and the file records none (or records another digest)")
            chosen = editing.parse_episodes(episodes, dataset.n_episodes)
            actual_episodes = (parallel.episode_digests(client, dataset.take(chosen)) if client is not None else
                               digests(dataset.take(chosen), None)[1])
            wrong = [int(e) for e, d in zip(chosen, actual_episodes) if d != recorded[e]]
            if wrong:
                raise DigestMismatchError(f"{path}: episode{'s' * (len(wrong) > 1)} {', '.join(map(str, wrong[:10]))} "
                                          f"differ{'s' * (len(wrong) == 1)} from the digests recorded with {expected}")
            return f"{expected} (episodes {episodes}: {len(chosen)} checked)"
        if client is not None and usable:
            actual, actual_episodes = digest(dataset), parallel.episode_digests(client, dataset)
        else:
            actual, actual_episodes = digests(dataset, None if usable else 0)  # per episode where comparable
    if actual != expected:
        which = changed_episodes(actual_episodes, recorded) if usable else ""
        raise DigestMismatchError(f"{path}: digest {actual} does not match the expected {expected}{which}")
    return actual


def checked_digest(dataset: Dataset) -> str:
    """The content digest of ``dataset``, compared with the one its file records where it is as recorded: a
    mismatch (E017) is a ``DigestMismatchError``, so a damaged dataset is not copied on as if it were whole."""
    found = digest(dataset)
    _compare_recorded(dataset, found)
    return found


def _compare_recorded(dataset: Dataset, found: str) -> None:
    recorded = dataset.metadata.get("digest")
    if dataset.as_recorded and isinstance(recorded, str) and recorded != found:
        raise DigestMismatchError(f"{dataset.source}: E017 digest-mismatch: its content's digest {found} differs "
                                  f"from the one recorded when it was written, {recorded}: it was changed or "
                                  "damaged since; nothing was written")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _image_paths(dataset: Dataset) -> set[str]:
    return {path for array in dataset.fields.values() if np.dtype(array.dtype).kind == "U"
            for path in first_rows(array)}


def _stream(dataset: Dataset, metadata: Mapping[str, Any], sink: formats.Sink, options: formats.WriteOptions,
            progress: bool, label: str) -> tuple[str, list[str] | None]:
    """Copy every field into ``sink`` in name order, hashing the blocks on the way; returns the digest of
    the arrays with ``metadata`` (the metadata being written) and the per-episode digests."""
    digester = Digester()
    episodes = episode_digester(dataset) if dataset.n_episodes <= MAX_EPISODE_DIGESTS else None
    total = sum(row_bytes(a) * a.shape[0] for a in dataset.fields.values())
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None if progress else True) as bar:
        for name in sorted(dataset.fields):
            array = dataset.fields[name]
            row_shape = tuple(array.shape[1:])
            digester.begin_field(name, array.dtype, tuple(array.shape))
            if episodes is not None:
                episodes.begin_field(name, array.dtype, tuple(array.shape))
            sink.add_field(name, np.dtype(array.dtype), row_shape, array.shape[0])
            rows = block_rows(array, multiple=options.rows_per_chunk(np.dtype(array.dtype), row_shape))
            for block in prefetch(iter_blocks(array, rows=rows, label=f"{dataset.source}: field '{name}'")):
                digester.update(block)
                if episodes is not None:
                    episodes.update(block)
                sink.append(name, block)
                bar.update(block.nbytes)
    return digester.finish(metadata), episodes.finish() if episodes is not None else None


@dataclass(frozen=True)
class SaveResult:
    """What a save wrote: the destination, its format, the content digest checked on both sides, and notes
    on what a peer format made up (flags a dataset never recorded, say)."""

    path: Path | str
    format: str
    digest: str
    notes: tuple[str, ...] = ()


def save(dataset: Dataset, path: Path | str, *, format: str | None = None,
         options: formats.WriteOptions | None = None, overwrite: bool = False, progress: bool = False,
         lineage: Mapping[str, Any] | None = None, fill_rewards: float | None = None,
         readme: bool = True, storage_options: dict[str, Any] | None = None, client: Any = None,
         rows_at: tuple[str, dict[str, Any]] | None = None) -> SaveResult:
    """Write ``dataset`` to ``path`` atomically, in the format its suffix (or ``format``) names.

    Rows are streamed a block at a time, so a lazy dataset larger than memory can be saved. The written
    file is read back and its digest compared with the source's; a mismatch raises
    ``DigestMismatchError`` and leaves nothing at ``path``. Image files that ``obs`` paths name are copied
    next to the new file, keeping their relative paths.

    :param lineage: an entry appended to the metadata's lineage (``operation``, ``parent_digest``, ...);
        a ``parent_digest`` of ``None`` records the digest of what was written (a lossless copy).
    :param fill_rewards: for demonstrations without rewards written to a format that needs them (SB2's
        .npz, D4RL, Minari): the reward of every step; without it, such a save is refused.
    :param readme: where the metadata holds a card, write it as the dataset's README.md (``expertdata.core.cards``).
    :param storage_options: for a URL (``s3://bucket/name.zarr``): fsspec's options. A dataset is written
        there as Zarr, here first, then uploaded with its root metadata last (``expertdata.io.remote.upload``).
    :param client: a Dask client (``expertdata.io.cluster``): the rows are written by its workers, blocks of whole
        episodes each (``expertdata.io.parallel``); the same content, digest for digest, as one process. A URL is
        written in place: the workers write their chunks there, the client the rest, its root metadata last.
    :param rows_at: with ``client``, for a Zarr ``path`` here that will be put at a URL: that URL and its storage
        options, where the workers write the per-step chunks (``_save_remote`` passes it).
    """
    if remote.is_url(path):
        return _save_remote(dataset, str(path), format, options, overwrite, progress, lineage, fill_rewards,
                            readme, storage_options, client)
    path = Path(path)
    backend = formats.for_path(path, format)
    options = options or formats.WriteOptions()
    options.codec(backend)
    if not backend.capabilities.composite_obs and list(dataset.leaf_fields()) != [""]:
        able = ", ".join(f.name for f in formats.every() if f.capabilities.composite_obs)
        raise UsageError(f"{path}: {backend.name} stores one observation array, and {dataset.source} has a composite "
                         f"observation space (leaves {', '.join(dataset.leaf_fields())}); write one of {able}")
    if backend.capabilities.needs_rewards and not dataset.has_rewards:
        if fill_rewards is None:
            raise UsageError(f"{path}: {backend.name} needs rewards, and {dataset.source} has none (its metadata says "
                             "they are absent); fill them with a constant (fill_rewards=0, --fill-rewards 0) or "
                             "write a format that keeps their absence (zarr, hdf5)")
        parent = (lineage or {}).get("parent_digest") or digest(dataset)
        dataset = dataset.with_rewards(fill_rewards)
        lineage = {**(lineage or {"operation": "save"}), "fill_rewards": float(fill_rewards), "parent_digest": parent}
    metadata = dict(dataset.metadata)
    metadata["schema_version"] = SCHEMA_VERSION
    if lineage is not None:
        metadata["lineage"] = list(metadata.get("lineage", [])) + [{**lineage, "time": _now()}]
    written: list[Path] = []
    notes: list[str] = []
    inputs = list(dataset.inputs)
    on_cluster = client is not None and not dataset.has_image_paths and dataset.n_transitions > 0
    if on_cluster and backend.name != "zarr":  # workers write Zarr parts, from which the client writes the file
        atomic.check_destination(path, inputs, overwrite, replaceable=lambda p: backend.sniff(p))
        with parallel.staging(path) as parts:
            staged_path = Path(parts) / "parts.zarr"
            save(dataset, staged_path, format="zarr", lineage=lineage, readme=False, client=client)
            with load(staged_path) as staged:
                result = save(staged, path, format=format, options=options, overwrite=overwrite, progress=progress,
                              readme=readme)
        return result
    with atomic.destination(path, overwrite, inputs, replaceable=lambda p: backend.sniff(p)) as tmp:
        try:
            if dataset.has_image_paths and dataset.root is not None:
                written = images.copy_images(_image_paths(dataset), dataset.root, path.parent)
            lossy = backend.capabilities.exports and options.codec(backend)[0] in backend.capabilities.lossy
            if backend.capabilities.exports:
                source_digest, per_episode = digests(dataset.with_metadata(metadata))
                _compare_recorded(dataset, source_digest)
                _record(metadata, source_digest, lineage, per_episode)
                if lossy:  # what is written differs from the source: no digest of it is recorded
                    metadata.pop("digest"), metadata.pop("episode_digests", None)
                    if lineage is not None:
                        metadata["lineage"][-1]["lossy"] = options.compression
                notes = cast(formats.Exporter, backend).export(dataset, metadata, tmp, options)
            elif on_cluster:  # checked episode by episode against the workers' hashes of the source as written
                def record(found: str, per_episode: list[str]) -> None:
                    _compare_recorded(dataset, found)
                    _record(metadata, found, lineage, per_episode)

                source_digest, _ = parallel.write_parts(client, dataset, tmp, options, metadata, record, rows_at)
            else:
                sink = backend.writer(tmp, options)
                try:
                    source_digest, per_episode = _stream(dataset, metadata, sink, options, progress, path.name)
                    _compare_recorded(dataset, source_digest)
                    _record(metadata, source_digest, lineage, per_episode)
                    sink.set_metadata(metadata)
                    sink.close()
                except BaseException:  # a failed close too (a full disk): the file is released, then removed
                    sink.abort()
                    raise
            if not on_cluster:  # on a cluster: checked episode by episode already (rows may live elsewhere)
                with load(tmp, backend.name) as copy:  # lossy: its error is in the notes
                    written_digest = source_digest if lossy else digest(copy)
                if written_digest != source_digest:
                    raise DigestMismatchError(f"{path}: the written data's digest {written_digest} differs from the "
                                              f"source's {source_digest}; nothing was written")
        except BaseException:
            for image in written:
                image.unlink(missing_ok=True)
            raise
    if readme and isinstance(metadata.get("card"), dict):
        write_readme(path, metadata["card"])
    return SaveResult(path, backend.name, source_digest, tuple(notes))


def _save_remote(dataset: Dataset, url: str, format: str | None, options: formats.WriteOptions | None,
                 overwrite: bool, progress: bool, lineage: Mapping[str, Any] | None, fill_rewards: float | None,
                 readme: bool, storage_options: dict[str, Any] | None, client: Any) -> SaveResult:
    """Write here, then upload; on a cluster, the workers write their chunks there, between making way for the
    dataset and putting the rest (root metadata last). An object store has no rename: an existing dataset is gone
    before the new one is written there (without a cluster, once the new one is written and checked here)."""
    import tempfile

    if (format or "zarr") != "zarr" or not url.rstrip("/").lower().endswith(".zarr"):
        raise UsageError(f"{url}: datasets are written where they live as Zarr (name ending in .zarr)")
    if url.rstrip("/") in (i.rstrip("/") for i in dataset.inputs):
        raise UsageError(f"{url}: the destination is the dataset being read")
    folder = remote.cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".upload-") as tmp:
        local = Path(tmp) / Path(url.rstrip("/")).name
        if client is None:
            result = save(dataset, local, format="zarr", options=options, progress=progress, lineage=lineage,
                          fill_rewards=fill_rewards, readme=readme)
            remote.upload(local, url, storage_options, overwrite)
            return replace(result, path=url)
        there = remote.storage_options(storage_options)
        remote.claim(url, there, overwrite)
        try:
            result = save(dataset, local, format="zarr", options=options, progress=progress, lineage=lineage,
                          fill_rewards=fill_rewards, readme=readme, client=client, rows_at=(url, there))
            remote.put(local, url, there)
        except BaseException:
            remote.discard(url, there)
            raise
    return replace(result, path=url)


def _record(metadata: dict[str, Any], source_digest: str, lineage: Mapping[str, Any] | None,
            per_episode: list[str] | None) -> None:
    """The digest into the metadata being written (validate compares it, so corruption shows even without
    checksums), and into the lineage entry of a lossless copy; the per-episode digests beside it."""
    if lineage is not None and "parent_digest" in lineage and lineage["parent_digest"] is None:
        metadata["lineage"][-1]["parent_digest"] = source_digest
    metadata["digest"] = source_digest
    metadata.pop("episode_digests", None)
    if per_episode is not None:
        metadata["episode_digests"] = per_episode


def convert(src: Path | str, dst: Path | str, *, format: str | None = None,
            options: formats.WriteOptions | None = None, overwrite: bool = False,
            traj_limitation: int = -1, progress: bool = False, trusted: bool = False,
            source_format: str | None = None, fill_rewards: float | None = None,
            storage_options: dict[str, Any] | None = None, strict: bool = False, client: Any = None) -> SaveResult:
    """Convert a dataset losslessly to another format (or to its first ``traj_limitation`` episodes); either
    side may be a URL (``storage_options`` for both).

    Every array is copied bit for bit and the metadata is kept; the destination records the source's
    digest, format and file name, and the operation, in its lineage. Atomic, streamed, and the source is
    never modified. A peer format (``expertdata formats``) is read by its layout, or by ``source_format``;
    the result's notes say what reading or writing it skipped or made up.
    """
    with load(src, format=source_format, trusted=trusted, storage_options=storage_options, strict=strict) as dataset:
        lineage: dict[str, Any] = {"operation": "convert", "from_format": dataset.format,
                                   "source": Path(str(src).rstrip("/")).name, "parent_digest": None}
        if traj_limitation not in (-1, None):
            if not 0 < traj_limitation <= dataset.n_episodes:
                raise UsageError(f"traj_limitation={traj_limitation}: {src} holds {dataset.n_episodes} episodes; "
                                 f"ask for 1 to {dataset.n_episodes}, or -1 for all")
            lineage.update(operation="traj_limitation", episodes=traj_limitation,
                           parent_digest=checked_digest(dataset))
            dataset = dataset.take_episodes(traj_limitation)
        result = save(dataset, dst, format=format, options=options, overwrite=overwrite, progress=progress,
                      lineage=lineage, fill_rewards=fill_rewards, storage_options=storage_options, client=client)
        return replace(result, notes=dataset.notes + result.notes)


def select(src: Path | str, dst: Path | str, *, overwrite: bool = False, progress: bool = False,
           trusted: bool = False, client: Any = None, **criteria: Any) -> SaveResult:
    """Write the episodes of ``src`` that meet ``criteria`` (``editing.choose``'s) to ``dst``, in any format; the
    lineage records the parent's digest, the criteria and the episodes kept.

    Episode numbers (``episodes``) are pushed down into a reader that can read episodes alone (LeRobot): only their
    files are opened and judged, so the complete episodes of a partial download are written whole; the parent's
    digest is then the one it records, if any (it is not read whole)."""
    chosen = editing.parse_episodes(criteria["episodes"]) if criteria.get("episodes") is not None else None
    pushed = chosen is not None and not remote.is_url(src) and formats.selective(src)
    with load(src, trusted=trusted, episodes=chosen if pushed else None) as dataset:
        episodes = editing.choose(dataset, **{**criteria, "episodes": None} if pushed else criteria)
        parent = (dataset.metadata.get("digest") if pushed else checked_digest(dataset))
        lineage = {"operation": "select", "source": Path(src).name, "parent_digest": parent,
                   "criteria": {k: v for k, v in criteria.items() if v is not None},
                   "episodes": int(len(episodes)), "of": None if pushed else dataset.n_episodes}
        return save(dataset.take(episodes), dst, overwrite=overwrite, progress=progress, lineage=lineage,
                    client=client)


def merge(srcs: Sequence[Path | str], dst: Path | str, *, overwrite: bool = False, progress: bool = False,
          trusted: bool = False, client: Any = None) -> SaveResult:
    """Write the episodes of every source, in order, to ``dst``; the lineage records each parent's digest."""
    if len(srcs) < 2:
        raise UsageError("merge needs two or more datasets")
    opened = [load(src, trusted=trusted) for src in srcs]
    try:
        parents = [{"source": Path(src).name, "digest": checked_digest(d), "episodes": d.n_episodes}
                   for src, d in zip(srcs, opened)]
        return save(editing.merged(opened), dst, overwrite=overwrite, progress=progress,
                    lineage={"operation": "merge", "parents": parents}, client=client)
    finally:
        for d in opened:
            d.close()


def edit_card(path: Path | str, trusted: bool = False, **changes: Any) -> dict[str, Any]:
    """Change the card of the dataset at ``path`` (fields given as ``None`` stay as they are) and write it as the
    dataset's README.md. Returns the card.

    Our formats keep the card in their metadata: the dataset is written anew beside itself with the new card and
    takes its place (its content digest is unchanged; a file there that the dataset does not hold is never lost:
    the edit is refused instead). A peer format's files are its own: only its README.md is written, inside the
    folder (or beside the file), and nothing else is touched."""
    if remote.is_url(path):
        raise UsageError(f"{path}: a card is edited on a local copy (expertdata convert it here, edit, and convert it "
                         "back)")
    path = Path(path)
    tmp = None
    with load(path, trusted=trusted) as dataset:
        given = {k: v for k, v in changes.items() if v is not None}
        peer = formats.by_name(dataset.format).capabilities.exports
        old = dataset.metadata.get("card") or (read_card(path) if peer else {})
        card = cards.check({**old, **given})
        if not peer:
            tmp = atomic.temporary(path)
            try:
                save(dataset.with_metadata({**dataset.metadata, "card": card}), tmp, format=dataset.format,
                     readme=False)
                _refuse_losses(path, tmp)
            except BaseException:
                atomic.remove(tmp)
                raise
        summary = _summary(dataset)
    if tmp is not None:
        atomic.replace(tmp, path)
    write_readme(path, card, summary)
    return card


def _refuse_losses(old: Path, new: Path) -> None:
    """Refuse to put the folder ``new`` in the place of ``old`` where ``old`` holds files ``new`` does not (a file a
    user kept inside a Zarr store; the card and a streaming writer's journal aside)."""
    if not old.is_dir():
        return
    kept = {p.relative_to(new) for p in new.rglob("*")}
    lost = sorted(str(p.relative_to(old)) for p in old.rglob("*") if p.relative_to(old) not in kept
                  and p.name != "README.md" and not p.is_dir())
    if lost:
        raise UsageError(f"{old} holds {len(lost)} file{'s' * (len(lost) > 1)} the dataset does not ({lost[0]}"
                         f"{', ...' if len(lost) > 1 else ''}); rewriting it with a new card would remove "
                         f"{'them' if len(lost) > 1 else 'it'}: move {'them' if len(lost) > 1 else 'it'} out first")


def read_card(path: Path) -> dict[str, Any]:
    """The card a dataset's README.md holds (``{}`` where it has none), read through the guard: a link or a FIFO
    in its place is refused, its size bounded."""
    from ..core import guard

    readme = cards.readme_path(path)
    scope = guard.Scope(readme.parent)
    if not scope.is_file(readme.name):
        return {}
    return cards.parse(scope.read_text(readme.name, cards.MAX_README), readme)


def _summary(dataset: Dataset) -> dict[str, Any]:
    """What a card shows of its dataset: counts, returns and the content digest."""
    returns = np.asarray(dataset["episode_returns"][:], np.float64) if dataset.has_rewards else np.zeros(0)
    return {"env_id": dataset.metadata.get("env_id"), "episodes": dataset.n_episodes,
            "transitions": dataset.n_transitions, "digest": dataset.metadata.get("digest") or digest(dataset),
            "episode_returns": {"min": float(returns.min()), "mean": float(returns.mean()),
                                "max": float(returns.max())} if len(returns) else None}


def write_readme(path: Path, card: Mapping[str, Any], summary: Mapping[str, Any] | None = None,
                 trusted: bool = False) -> Path:
    """Write the card of the dataset at ``path`` as its README.md (atomically), with its counts, returns and
    content digest (``summary``; read from the dataset when not given)."""
    if summary is None:
        with load(path, trusted=trusted) as dataset:
            summary = _summary(dataset)
    target = cards.readme_path(path)
    with atomic.destination(target, overwrite=True) as tmp:
        tmp.write_text(cards.render(card, summary, path.name))
    return target
