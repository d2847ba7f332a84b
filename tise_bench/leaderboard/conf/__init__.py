"""Packaged Hydra config of ``python -m tise_bench.leaderboard``."""
