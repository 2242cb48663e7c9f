"""The cluster recipes a user follows (docker/, deploy/): they parse, and they carry what a
secured cluster needs: the Ray token on every node, the PostgreSQL driver, MLflow basic-auth,
shared checkpoint storage, and `--resume` where a job is restarted."""

import subprocess
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _env(container):
    return {item["name"]: item for item in container.get("env", [])}


def test_the_compose_file_secures_every_service():
    compose = yaml.safe_load((ROOT / "docker/docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "mlflow", "ray-head", "ray-worker", "launcher"} <= set(services)
    mlflow = services["mlflow"]
    assert "--app-name basic-auth" in mlflow["command"]
    assert "postgresql+psycopg://" in mlflow["command"]
    for key in (
        "MLFLOW_AUTH_CONFIG_PATH",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        assert key in mlflow["environment"]
    for name in ("ray-head", "ray-worker", "launcher"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in env
        assert any(volume.startswith("storage:") for volume in services[name]["volumes"])
    assert "MLFLOW_TRACKING_PASSWORD" in services["launcher"]["environment"]
    ini = (ROOT / "docker/basic_auth.ini").read_text()
    assert "postgresql+psycopg://" in ini and "mlflow_auth" in ini
    assert "mlflow_auth" in (ROOT / "docker/initdb.sql").read_text()
    assert "'.[cluster]'" in (ROOT / "docker/Dockerfile").read_text()


def test_the_rayjob_manifest_runs_a_resumable_secured_launch():
    job = yaml.safe_load((ROOT / "deploy/kuberay/rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    entry = job["spec"]["entrypoint"]
    assert entry.startswith("slotsweep launch ") and "--resume" in entry
    assert "--storage /storage" in entry and "--tracking-uri http" in entry
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]]
    pods += [group["template"]["spec"] for group in cluster["workerGroupSpecs"]]
    for pod in pods:
        container = pod["containers"][0]
        env = _env(container)
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
        assert {"name": "storage", "mountPath": "/storage"} in container["volumeMounts"]
        claim = {v["name"]: v for v in pod["volumes"]}["storage"]["persistentVolumeClaim"]
        assert claim["claimName"] == "slotsweep-storage"
    head_env = _env(pods[0]["containers"][0])
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(head_env)
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert "RAY_AUTH_TOKEN" in _env(submitter)


def test_the_slurm_script_parses_and_resumes_after_a_requeue():
    script = ROOT / "deploy/slurm/slotsweep.sbatch"
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert "#SBATCH --requeue" in text and "SLURM_RESTART_COUNT" in text
    assert "ray start --head" in text and "srun" in text and "RAY_AUTH_MODE=token" in text
    assert 'slotsweep launch "$STUDY" "${resume[@]}"' in text and "--storage" in text


def test_the_cluster_extra_brings_the_driver_and_basic_auth():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cluster = " ".join(extras["optional-dependencies"]["cluster"])
    assert "psycopg" in cluster and "Flask-WTF" in cluster
    import flask_wtf  # noqa: F401 - installed with the extra
    import psycopg  # noqa: F401
