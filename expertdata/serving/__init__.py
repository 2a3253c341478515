"""How a dataset is consumed for training: SB2's ``ExpertDataset`` and ``DataLoader``, splits, torch datasets,
MPI shards, and ``TrainingData``, the one seam trainers see. Imports ``core``, ``io`` and ``tools``."""
