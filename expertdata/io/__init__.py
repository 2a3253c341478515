"""How a dataset is read and written: the format backends (``formats/``), atomic writes and the destination check,
remote storage, the streaming journal, load/save/convert/select/merge (``storage``), ``validate`` on a path
(``checking``), and the same work on a Dask cluster (``cluster``, ``parallel``). Imports only ``core``."""
