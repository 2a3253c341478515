"""How a dataset is made: ``generate_expert_traj`` (``recorder``), the crash-safe episode writer, env
construction, and the reference experts. Imports ``core`` and ``io``."""
