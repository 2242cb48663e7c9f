"""The GPU side prepared on the CPU: the device check's CPU mode, its agreement verdict, the
precision key, the memory cap and the choice of the Triton update on CUDA."""

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slotsweep.config import TrialConfig, runtime_keys, trial_key
from slotsweep.nn import SlotLinear
from slotsweep.train.build import use_fused
from slotsweep.train.device import apply_precision, cap_gpu_memory

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "bench" / "gpu_check.py"
# what the GPU machines lack: the check must run without them
BLOCKED = ("pydantic", "pydantic_core", "ray", "mlflow", "optuna")


def _gpu_check():
    sys.path.insert(0, str(CHECK.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(CHECK.parent))
    return gpu_check


@pytest.mark.slow
def test_device_check_runs_on_the_cpu_without_ray_mlflow_optuna_or_pydantic():
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in BLOCKED)
    code = f"import runpy, sys; {block}; sys.argv = ['gpu_check.py', '--quick']; "
    code += f"runpy.run_path({str(CHECK)!r}, run_name='__main__')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "no CUDA device found, CPU mode" in out
    for heading in ("Triton update vs reference", "ms per step", "epoch, slot fused", "packed"):
        assert f"## {heading}" in out
    assert '"disagree": 0' in out and "agreement: ok" in out
    assert "imported Ray/MLflow/Optuna/pydantic: none" in out


def test_the_device_check_counts_real_disagreements_and_forgives_exact_ties():
    check = _gpu_check()
    kernel = SlotLinear(3, 2, 4, fused=True)
    with torch.no_grad():
        kernel.scores.copy_(torch.tensor([0.0, 1.0, 0.5, 0.2]).expand(2, 3, 4))
    kernel.refresh_cached_weight()
    reference = copy.deepcopy(kernel)
    assert check.disagreement([(kernel, reference)])["disagree"] == 0
    with torch.no_grad():  # one connection's choice moves to a clearly lower score
        kernel.scores[0, 0, 2] = 2.0
    kernel.refresh_cached_weight()
    assert check.disagreement([(kernel, reference)])["disagree"] == 1
    with torch.no_grad():  # the reference sees a tie there: either order is right
        reference.scores[0, 0, 2] = 1.0
    found = check.disagreement([(kernel, reference)])
    assert found["disagree"] == 0 and found["near_ties"] == 1
    kernel.cached_weight.data.zero_()  # a written weight that its scores do not select
    assert check.disagreement([(kernel, reference)])["disagree"] == 1


def test_precision_key_defaults_to_fp32_and_keeps_earlier_trial_keys():
    config = TrialConfig().resolved()
    assert config.precision == "fp32" and "precision" not in runtime_keys()
    # the key a trial had before `precision` existed: its identity settings without it
    settings = config.model_dump(mode="json", exclude={*runtime_keys(), "precision"})
    before = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    assert trial_key(config) == before
    assert trial_key(TrialConfig(precision="tf32").resolved()) != before
    with pytest.raises(ValueError, match="'fp32' or 'tf32'"):
        TrialConfig(precision="bf16")


def test_precision_and_memory_cap_leave_the_cpu_alone():
    matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    apply_precision("tf32", torch.device("cpu"))
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
        matmul,
        conv,
    )
    assert cap_gpu_memory(1.0) is False
    if not torch.cuda.is_available():
        assert cap_gpu_memory(0.125) is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_precision_sets_the_tf32_switches_on_cuda():
    device = torch.device("cuda")
    apply_precision("tf32", device)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    apply_precision("fp32", device)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_impl_auto_takes_the_fused_update_on_cuda_where_triton_is_installed():
    config = TrialConfig(impl="auto").resolved()
    triton = pytest.importorskip("triton")
    assert triton is not None and use_fused(config, torch.device("cuda"))
    assert not use_fused(TrialConfig(impl="reference").resolved(), torch.device("cuda"))
