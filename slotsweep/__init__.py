"""slotsweep: hyperparameter studies and sweeps for slot machines (Aladago & Torresani, 2021)."""

__version__ = "0.1.0"
