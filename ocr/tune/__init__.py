"""Sweeps: Ray Tune around the same TorchTrainer, with search spaces checked before any trial."""
