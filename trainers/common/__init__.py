"""What the trainers share: networks, action heads, the policy, the optimiser, MPI and checkpoints."""
