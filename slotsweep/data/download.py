"""Download through torchvision, guarded so that a machine without network fails fast."""

from __future__ import annotations

import importlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from .catalog import DatasetSpec

PROBE_TIMEOUT = 3.0  # seconds to open a TCP connection before calling the network absent
STALL_TIMEOUT = 60.0  # seconds a download socket may sit idle before it is abandoned


class DownloadError(RuntimeError):
    """The files could not be downloaded (no network, server error, bad checksum)."""


def fetch(spec: DatasetSpec, root: Path) -> None:
    """Let torchvision download `spec` into `root` in its own layout; DownloadError if it fails."""
    if spec.torchvision_class is None:
        raise DownloadError(f"{spec.name} has no download source")
    datasets = importlib.import_module("torchvision.datasets")  # heavy: only when downloading
    cls = getattr(datasets, spec.torchvision_class)
    urls = list(getattr(cls, "mirrors", None) or [cls.url])
    if not any(reachable(url) for url in urls):
        hosts = ", ".join(sorted({urlsplit(url).netloc for url in urls}))
        raise DownloadError(f"no network: could not connect to {hosts} within {PROBE_TIMEOUT:g} s")
    try:
        with _socket_timeout(STALL_TIMEOUT):
            cls(str(root), train=True, download=True)
    # URLError is an OSError; MNIST's loop over its mirrors raises RuntimeError.
    except (OSError, RuntimeError) as error:
        raise DownloadError(str(error).strip() or repr(error)) from error


def reachable(url: str) -> bool:
    """Whether a TCP connection to `url`'s host (or the proxy that serves it) opens in time."""
    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(parts.hostname or ""):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    opened: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=PROBE_TIMEOUT).close()
            opened.append(True)
        except OSError:
            pass

    # A thread, because name resolution ignores socket timeouts and can hang on its own.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT)
    return bool(opened)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torchvision opens its URLs without a timeout; a stalled server would hang the trial.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
