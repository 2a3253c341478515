"""expertdata: the expert-demonstration format, its validation, storage backends and tools.

>>> import expertdata
>>> ds = expertdata.load("fixtures/pendulum.npz")          # .npz, .h5/.hdf5, .zarr or .zarr.zip
>>> expertdata.validate(ds).ok
True
>>> expertdata.convert("fixtures/pendulum.npz", "/tmp/pendulum.zarr", overwrite=True).digest  # doctest: +ELLIPSIS
'blake3:...'
"""
from .dataset import Dataset
from .digest import digest
from .episodes import EpisodeIndex
from .errors import (DigestMismatchError, ExpertDataError, InvalidDatasetError, UnreadableError,
                     UsageError)
from .expert_dataset import ExpertDataset
from .formats import WriteOptions
from .loader import DataLoader
from .recording import RecordingError, generate_expert_traj
from .schema import SCHEMA_VERSION
from .storage import SaveResult, convert, load, save, verify
from .validation import Report, validate
from .version import __version__

__all__ = ["DataLoader", "Dataset", "DigestMismatchError", "EpisodeIndex", "ExpertDataset", "ExpertDataError",
           "InvalidDatasetError", "RecordingError", "Report", "SCHEMA_VERSION", "SaveResult", "UnreadableError",
           "UsageError", "WriteOptions", "convert", "digest", "generate_expert_traj", "load", "save", "validate",
           "verify", "__version__"]
