"""expertdata: the expert-demonstration format, its validation, storage backends and tools.

The public API is what this module exports; the rooms behind it are ``core`` (what a dataset is), ``io`` (how
it is read and written), ``serving`` (how training consumes it), ``recording`` (how it is made) and ``tools``
(what a user runs on it); docs/architecture.md draws them.

>>> import expertdata
>>> ds = expertdata.load("fixtures/pendulum.npz")          # .npz, .h5/.hdf5, .zarr or .zarr.zip
>>> expertdata.validate(ds).ok
True
>>> expertdata.convert("fixtures/pendulum.npz", "/tmp/pendulum.zarr", overwrite=True).digest  # doctest: +ELLIPSIS
'blake3:...'
"""
from .core import errors, observations, schema, spaces
from .core.dataset import Dataset
from .core.digest import digest
from .core.episodes import Episode, EpisodeIndex
from .core.errors import DigestMismatchError, ExpertDataError, InvalidDatasetError, UnreadableError, UsageError
from .core.field import Field
from .core.rules import Report
from .core.schema import SCHEMA_VERSION
from .core.version import __version__
from .core.windows import Frames, Windows
from .io import atomic
from .io.checking import validate
from .io.formats import WriteOptions
from .io.storage import SaveResult, convert, load, save, verify
from .recording import envs, experts
from .recording.recorder import RecordingError, generate_expert_traj
from .serving.expert_dataset import ExpertDataset
from .serving.loader import DataLoader
from .serving.mpi import World
from .serving.training import TrainingData
from .tools.plotting import plot

__all__ = ["DataLoader", "Dataset", "DigestMismatchError", "Episode", "EpisodeIndex", "ExpertDataset",
           "ExpertDataError", "Field", "Frames", "InvalidDatasetError", "RecordingError", "Report", "SCHEMA_VERSION",
           "SaveResult", "TrainingData", "UnreadableError", "UsageError", "Windows", "World", "WriteOptions", "atomic",
           "convert", "digest", "envs", "errors", "experts", "generate_expert_traj", "load", "observations", "plot",
           "save", "schema", "spaces", "validate", "verify", "__version__"]
