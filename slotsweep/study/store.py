"""MLflow store URIs made absolute, without importing MLflow (pre-flight reads them first)."""

from __future__ import annotations

from pathlib import Path

from slotsweep.registry import DEFAULT_TRACKING_URI


def absolute_tracking_uri(uri: str | None) -> str:
    """The URI with local paths made absolute, so trials in other folders write the same store."""
    uri = uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:":
            return "sqlite:///" + str(Path(path).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return Path(uri[len("file:") :]).resolve().as_uri()
    return uri
