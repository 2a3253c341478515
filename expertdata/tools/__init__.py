"""What a user runs on a dataset: ``info``, ``diff`` and ``plot``. Imports ``core`` and ``io``."""
