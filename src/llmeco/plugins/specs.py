"""What a plugin hands llmeco: one small frozen dataclass per kind of extension.

These are plain data with callables inside, importable from any layer, so a plugin never
needs to import the part of llmeco it extends just to describe itself. Types from upper
layers (FastAPI routers, chat backends, engine clients) appear only in annotations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from llmeco.settings import Settings

#: A record as :mod:`llmeco.data.readers` returns them (``{"text": ..., "source": ...}`` …).
Record = dict[str, Any]


@dataclass(frozen=True)
class ReaderSpec:
    """Reads files with one of ``suffixes`` (lower case, with the dot) into records.

    ``read(path)`` returns the file's records and raises ``ConfigError`` naming the file
    when it cannot; ``llmeco data`` and ``llmeco kb add`` use it for every such file.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[Path], list[Record]]
    description: str = ""


@dataclass(frozen=True)
class ModelLoaderSpec:
    """Turns a model reference into a local model (``llmeco.modeling.load.ModelSource``).

    ``resolve(ref, settings, console)`` returns None when ``ref`` is not its kind of
    reference, so loaders are asked in turn (plugins before the built-ins, which end with
    the catch-all "local path" loader).
    """

    name: str
    resolve: Callable[[str, Settings, Console | None], Any]
    description: str = ""


@dataclass(frozen=True)
class BackendSpec:
    """An engine backend: ``load(ref, settings, name)`` returns an ``EngineClient``.

    ``llmeco serve`` loads every ``--model`` with the backend ``LLMECO_ENGINE_BACKEND``
    names (``native``: llmeco's continuous-batching engine).
    """

    name: str
    load: Callable[[str, Settings, str | None], Any]
    description: str = ""


@dataclass(frozen=True)
class EvalTaskSpec:
    """An evaluation task type: its suite ``type`` name, config class and async runner."""

    name: str
    config: type[Any]
    run: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class RouteScope:
    """The scope a route needs: ``path`` exact, a prefix ending in ``/``, or with ``{param}``s.

    ``method`` is an HTTP method or ``*``; ``scope`` one of
    :data:`llmeco.governance.scopes.SCOPES`.
    """

    method: str
    path: str
    scope: str


@dataclass(frozen=True)
class AppSpec:
    """An application: HTTP routers, the scopes of their routes, and chat backends.

    ``build_app`` mounts ``routers`` (FastAPI ``APIRouter``) and registers
    ``chat_backends`` (``llmeco.server.chat_backends.ChatBackend``: who answers chat for a
    model-name prefix such as ``support:``). Every route must be covered by ``scopes``; a
    route that is not needs ``admin`` (fail closed).
    """

    name: str
    routers: tuple[Any, ...] = ()
    scopes: tuple[RouteScope, ...] = ()
    chat_backends: tuple[Any, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ToolSpec:
    """A tool kind agent profiles can list (``tools: [{kind: NAME, ...}]``).

    ``options`` is the pydantic model of the profile entry (with ``kind: Literal[NAME]``);
    ``build(options)`` returns the ``llmeco.apps.agents.tools.Tool`` the agent calls.
    """

    kind: str
    options: type[Any]
    build: Callable[[Any], Any]
    description: str = ""


@dataclass(frozen=True)
class RedactionRuleSpec:
    """A detector for the redactor: ``detect(text)`` → spans ``(start, end)`` of ``kind``.

    Redacted text shows ``placeholder`` in each span's place; ``priority`` orders overlapping
    spans (lower wins; the built-ins use 0–99).
    """

    kind: str
    placeholder: str
    detect: Callable[[str], Sequence[tuple[int, int]]]
    priority: int = 100
    description: str = ""
