"""Hot swap: keep served ``NAME@alias`` models on the version their alias points at.

``llmeco serve --model support@production`` serves whatever version ``production`` names.
:class:`ModelFollower` polls the registry (one indexed read per model every
``LLMECO_MODEL_POLL_SECONDS``); when the alias has moved it loads the new version beside
the old one (off the event loop, so serving continues), swaps it into the model's
:class:`~llmeco.engine.swap.ModelSlot` atomically, and lets in-flight requests finish on the
old version before it is freed. ``POST /admin/models/{name}/reload`` runs the same check on
demand. Every swap is written to the audit ledger when the server has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from llmeco.engine.protocol import EngineClient
from llmeco.engine.swap import ModelSlot
from llmeco.errors import ConfigError, InvalidRequest, LlmecoError, NotFound
from llmeco.registry.refs import LATEST, ModelRef, parse_ref

if TYPE_CHECKING:
    from llmeco.governance.audit import AuditLedger
    from llmeco.registry.registry import Registry

log = logging.getLogger(__name__)

#: Loads a model reference as an engine serving under the given name (blocking; run in a
#: thread). ``llmeco serve`` passes ``AsyncEngine.from_ref``; tests may pass anything.
Loader = Callable[[str, str], EngineClient]


class SwapResult(BaseModel):
    """What a reload did: ``swapped`` is false when the version was already current."""

    model_config = ConfigDict(frozen=True)

    model: str
    ref: str
    previous_version: str
    version: str
    swapped: bool
    seconds: float


class ModelFollower:
    """Reloads served models when the registry alias they were started from moves."""

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        load: Loader,
        registry: Callable[[], Registry] | None,
        *,
        poll_seconds: float = 2.0,
        ledger: AuditLedger | None = None,
    ) -> None:
        """Follow ``slots`` (served name → slot; only ``NAME@alias`` refs are polled).

        ``registry`` opens the registry (lazily, once; None when there is none, then only
        forced reloads of plain references work); ``poll_seconds`` <= 0 disables polling.
        """
        self.slots = dict(slots)
        self._load = load
        self._open_registry = registry
        self._registry: Registry | None = None
        self.poll_seconds = poll_seconds
        self.ledger = ledger
        self._locks = {name: asyncio.Lock() for name in self.slots}
        self._epochs: dict[str, tuple[int, int]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def followed(self) -> dict[str, ModelRef]:
        """Served name → the alias reference it follows."""
        out = {}
        for name, slot in self.slots.items():
            ref = parse_ref(slot.ref)
            if ref is not None and ref.alias is not None:
                out[name] = ref
        return out

    def start(self) -> None:
        """Start polling (no-op when nothing follows an alias or polling is off)."""
        if self._task is None and self.poll_seconds > 0 and self.followed():
            self._task = asyncio.create_task(self._poll_forever(), name="llmeco-model-follower")

    async def aclose(self) -> None:
        """Stop polling and close the registry; engines belong to the slots' owner."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._registry is not None:
            self._registry.store.close()
            self._registry = None

    async def _poll_forever(self) -> None:
        while True:
            for name in self.followed():
                try:
                    if await asyncio.to_thread(self._moved, name):
                        await self.reload(name, actor="registry")
                except Exception:  # keep serving the current version; retry next poll
                    log.exception("following the registry alias failed", extra={"model": name})
            await asyncio.sleep(self.poll_seconds)

    # -- checks --------------------------------------------------------------------------
    def _reg(self) -> Registry:
        if self._registry is None:
            if self._open_registry is None:
                raise InvalidRequest("this server has no model registry")
            self._registry = self._open_registry()
        return self._registry

    def _watch_state(self, ref: ModelRef) -> tuple[int, int]:
        reg = self._reg()
        epoch = reg.alias_epoch(ref.name)
        latest = reg.get(ref.name).version if ref.alias == LATEST else 0
        return epoch, latest

    def _moved(self, name: str) -> bool:
        """Whether the followed alias changed since the last look.

        The first look has nothing to compare with, so it reports a change: the alias may
        have moved between the load that started serving and this look (a replica that
        restarts during a promote), and :meth:`reload` is a no-op when the version served is
        the one the alias names.
        """
        ref = self.followed()[name]
        state = self._watch_state(ref)
        before = self._epochs.get(name)
        self._epochs[name] = state
        return before is None or state != before

    def _target(self, slot: ModelSlot) -> str:
        """The reference to load now: the alias resolved to ``NAME:version``, or the plain
        reference as given."""
        ref = parse_ref(slot.ref)
        if ref is None or ref.alias is None:
            return slot.ref
        return self._reg().resolve(ref.name, ref.alias).ref

    # -- reload --------------------------------------------------------------------------
    async def reload(self, name: str, *, force: bool = False, actor: str = "") -> SwapResult:
        """Bring served model ``name`` to what its reference names now.

        Loads the new version beside the serving one and swaps it in once it is ready; does
        nothing when the version is unchanged unless ``force`` (then the reference is loaded
        again, e.g. a directory whose weights were replaced).

        Raises:
            NotFound: ``name`` is not served, or its alias no longer exists. UnsafeFile: a
                file of the new version fails its sha256. ConfigError: the new version failed
                to load. In every case the current version keeps serving.
        """
        slot = self.slots.get(name)
        if slot is None:
            known = ", ".join(self.slots) or "none"
            raise NotFound(f"model {name!r} is not served here (served: {known})", param="name")
        async with self._locks[name]:
            started = time.monotonic()
            ref = parse_ref(slot.ref)
            if ref is not None and ref.alias is not None:
                state = await asyncio.to_thread(self._watch_state, ref)
                self._epochs[name] = state
            target = await asyncio.to_thread(self._target, slot)
            previous = slot.model_info.version
            unchanged = previous != "" and target == previous
            if unchanged and not force:
                return SwapResult(
                    model=name,
                    ref=slot.ref,
                    previous_version=previous,
                    version=previous,
                    swapped=False,
                    seconds=0.0,
                )
            log.info("loading model for swap", extra={"model": name, "target": target})
            try:
                engine = await asyncio.to_thread(self._load, target, name)
            except LlmecoError:
                raise
            except Exception as exc:  # e.g. out of memory: the serving version stays
                raise ConfigError(
                    f"loading {target} for {name} failed ({exc}); {previous or slot.ref} "
                    "keeps serving"
                ) from exc
            await slot.swap(engine)
            result = SwapResult(
                model=name,
                ref=slot.ref,
                previous_version=previous,
                version=engine.model_info.version,
                swapped=True,
                seconds=round(time.monotonic() - started, 3),
            )
            log.info("model swapped", extra=result.model_dump())
            if self.ledger is not None:
                await self.ledger.arecord_admin(
                    actor or "server", "model.swap", result.model_dump()
                )
            return result

    def status(self) -> list[dict[str, Any]]:
        """Each served model: its reference, the version serving and any still draining."""
        followed = self.followed()
        return [
            {
                "model": name,
                "ref": slot.ref,
                "follows": str(followed[name]) if name in followed else None,
                "version": slot.model_info.version or None,
                "swaps": slot.swaps,
                "draining": slot.retiring,
            }
            for name, slot in self.slots.items()
        ]
