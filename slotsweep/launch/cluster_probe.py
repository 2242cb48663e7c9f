"""The child process of `preflight.probes.remote_cluster_problems`: connects to the cluster,
compares its nodes with what one trial needs, and runs the environment checks in one small Ray
task there; prints the problems as one JSON line (`python -m slotsweep.launch.cluster_probe`)."""

from __future__ import annotations

import json
import os
import sys

from slotsweep.preflight.probes import placement_problems, where_trials_run_problems


def main() -> None:
    """The child of `remote_cluster_problems`: connects, compares nodes, runs the check task."""
    import logging
    import time

    request = json.load(sys.stdin)
    started, limit = time.monotonic(), request["limit"]
    problems: list[str] = []
    try:
        import ray

        ray.init(address=request["address"], logging_level=logging.ERROR, log_to_driver=False)
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        needed = request["needed"]
        problems = placement_problems(needed, nodes, f"the cluster at {request['address']}")
        if not problems:
            place = {"num_cpus": needed.get("CPU", 0), "num_gpus": needed.get("GPU", 0)}
            place |= {"memory": needed["memory"]} if "memory" in needed else {}
            task = ray.remote(**place)(where_trials_run_problems)
            remaining = max(1.0, limit - (time.monotonic() - started) - 1)
            try:
                problems = ray.get(task.remote(request["checks"]), timeout=remaining)
            except ray.exceptions.GetTimeoutError:
                problems = [
                    f"Ray cluster at {request['address']}: a check task did not run "
                    f"within {remaining:.0f} s; the cluster may be busy"
                ]
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the user
        while exc.__cause__ is not None:  # Ray's ConnectionError hides why (a token, a version)
            exc = exc.__cause__
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        problems = [f"Ray cluster at {request['address']}: {type(exc).__name__}: {first}"]
    print(json.dumps(problems), flush=True)
    os._exit(0)  # Ray's shutdown hooks can take seconds; the answer is out


if __name__ == "__main__":
    main()
