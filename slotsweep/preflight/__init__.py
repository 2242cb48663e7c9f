"""Checks before anything starts: static checks of a study or a `train` command (`checks`) and
time-bounded probes of the store, the cluster, the devices and the data (`probes`)."""
