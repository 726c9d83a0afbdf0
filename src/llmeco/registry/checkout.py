"""Loading a registered version: verify every file's sha256, then hand out a model directory.

:func:`checkout` is what ``NAME@alias`` / ``NAME:version`` references go through: the layers
above hand :func:`resolve_local` to :func:`llmeco.modeling.load.resolve_model` as its
reference resolver, so ``generate``, ``eval``, ``train`` and ``serve`` all take them. Every
blob is re-hashed on every checkout — about a second per GB — so a corrupted or tampered file
is refused with its name instead of being served.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from llmeco.registry.refs import ModelRef, parse_ref
from llmeco.registry.registry import Registry, Version
from llmeco.settings import Settings


def checkout(
    registry: Registry, ref: str | ModelRef, progress: Callable[[int], None] | None = None
) -> tuple[Version, Path]:
    """Resolve ``ref``, verify all its files and return the version and a loadable directory.

    The directory is ``LLMECO_HOME/registry/NAME/VERSION``: symlinks to the verified blobs.

    Raises:
        NotFound: unknown model/alias/version, or a blob missing from the artifact store.
        UnsafeFile: a blob whose bytes no longer match the recorded sha256 (the message
            names the file, e.g. ``support:3/model.safetensors``), or a manifest path that
            would leave the directory.
    """
    version = registry.resolve_ref(ref)
    for entry in version.files:
        registry.artifacts.verify(entry, f"{version.ref}/{entry.path}", progress)
    view = registry.views / version.name / str(version.version)
    return version, registry.artifacts.link_view(view, version.files)


def checkout_settings(ref: ModelRef, settings: Settings) -> tuple[Version, Path]:
    """:func:`checkout` against the registry the settings name."""
    registry = Registry.open(settings)
    try:
        return checkout(registry, ref)
    finally:
        registry.store.close()


class LocalCheckout(NamedTuple):
    """A registry reference checked out: the exact version it named and a loadable directory."""

    #: ``NAME:VERSION`` — what ``NAME@alias`` pointed to when it was resolved.
    ref: str
    #: ``LLMECO_HOME/registry/NAME/VERSION``, every file verified against its sha256.
    path: Path


def resolve_local(ref: str, settings: Settings) -> LocalCheckout | None:
    """The registry-backed reference resolver :func:`llmeco.modeling.load.resolve_model` takes.

    A ``NAME@alias`` / ``NAME:version`` reference is checked out (every file's sha256
    verified) from the registry the settings name; anything else (a path, ``default``) is not
    a registry reference and gives None.

    Raises:
        NotFound: unknown model, alias or version. UnsafeFile: a file fails its sha256.
    """
    parsed = parse_ref(ref)
    if parsed is None:
        return None
    version, path = checkout_settings(parsed, settings)
    return LocalCheckout(version.ref, path)
