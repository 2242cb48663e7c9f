"""Running trials: the Tune adapter and launcher, one trial with its MLflow run, what a trial
needs from its Ray worker, the live view. The only package that imports Ray (its modules import
it where they need it, so `slotsweep train` runs a trial without Ray)."""
