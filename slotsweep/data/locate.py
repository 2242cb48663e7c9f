"""Where a data set's files are looked for, in order, and the error that lists them all."""

from __future__ import annotations

import os
from pathlib import Path

from .catalog import DatasetSpec
from .cifar import FOLDER as CIFAR_FOLDER
from .cifar import has_cifar_files
from .download import DownloadError, fetch
from .errors import DataNotFoundError
from .idx import has_idx_files

ENV_VAR = "SLOTSWEEP_DATA"
SYSTEM_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here
CACHE_DIR = Path("~/.cache/slotsweep/data")  # downloads go here when no root is given


def locate(spec: DatasetSpec, data_root: str | None = None, *, download_ok: bool = True) -> Path:
    """The folder holding `spec`'s files, downloading them if allowed; DataNotFoundError if not."""
    looked = candidate_folders(spec, data_root)
    found = _first_complete(spec, looked)
    if found is not None:
        return found
    if not download_ok:
        raise _not_found(spec, looked, "Download: not attempted (download=False).")
    root = download_root(data_root)
    try:
        fetch(spec, root)
    except DownloadError as error:
        raise _not_found(spec, looked, f"Download into {root} failed: {error}") from error
    found = _first_complete(spec, root_layouts(spec, root))
    if found is None:
        raise _not_found(spec, looked, f"Download into {root} left no readable files.")
    return found


def user_roots(data_root: str | None) -> list[Path]:
    """The roots the user chose: `data_root`, then $SLOTSWEEP_DATA (unset or empty skipped)."""
    chosen = [data_root, os.environ.get(ENV_VAR)]
    return [Path(root).expanduser() for root in chosen if root]


def download_root(data_root: str | None) -> Path:
    """Where a download goes: the first user root, else the per-user cache."""
    roots = user_roots(data_root)
    return roots[0] if roots else CACHE_DIR.expanduser()


def root_layouts(spec: DatasetSpec, root: Path) -> list[Path]:
    """The folders under `root` that may hold `spec`'s files, in the layouts we accept."""
    if spec.kind == "cifar":
        return [root / CIFAR_FOLDER, root]
    return [root / str(spec.torchvision_class) / "raw", root, root / str(spec.debian_name)]


def candidate_folders(spec: DatasetSpec, data_root: str | None) -> list[Path]:
    """Every folder searched, in order: user roots, Debian's folder, then the download cache."""
    roots = user_roots(data_root)
    folders = [folder for root in roots for folder in root_layouts(spec, root)]
    if spec.debian_name:
        system = SYSTEM_DIR / spec.debian_name
        folders += root_layouts(spec, system) if spec.kind == "cifar" else [system]
    if not roots:  # an earlier download without a root landed in the cache
        folders += root_layouts(spec, CACHE_DIR.expanduser())
    return folders


def _first_complete(spec: DatasetSpec, folders: list[Path]) -> Path | None:
    has_files = has_cifar_files if spec.kind == "cifar" else has_idx_files
    return next((folder for folder in folders if has_files(folder)), None)


def _not_found(spec: DatasetSpec, looked: list[Path], reason: str) -> DataNotFoundError:
    example = (
        f"ROOT/{CIFAR_FOLDER}/data_batch_1..5 + test_batch"
        if spec.kind == "cifar"
        else f"ROOT/{spec.torchvision_class}/raw/train-images-idx3-ubyte[.gz] etc."
    )
    how = (
        f"put torchvision's files under --data-root or ${ENV_VAR} ({example}), "
        "or run once with network access so torchvision can download them"
    )
    if spec.apt_package:
        how = (
            f"apt-get update && apt-get install {spec.apt_package} "
            f"(installs {SYSTEM_DIR / str(spec.debian_name)}), or {how}"
        )
    return DataNotFoundError(spec.name, looked, reason, how)
