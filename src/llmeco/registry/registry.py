"""The model registry: immutable numbered versions, aliases with history, attached evals.

::

    reg = Registry.open(settings)
    v = reg.register(Path("runs/sft-support"), "support", actor="alice")   # support:1
    reg.set_alias("support", v.version, "staging", actor="alice")
    reg.resolve("support", "staging")           # -> Version(support:1)
    reg.alias_epoch("support")                   # bumps on every alias move (cheap to poll)

Versions never change once written: their files are copied into the content-addressed
:class:`~llmeco.registry.artifacts.ArtifactStore` and recorded with their SHA-256, which
:mod:`llmeco.registry.checkout` verifies on every load. Version numbers are handed out by an
``UPDATE … SET latest_version = latest_version + 1`` on the model's row, which takes the
write lock first (SQLite) or a row lock (PostgreSQL), so concurrent registrations get
distinct, increasing numbers and a number is never reused.

Every alias move — :meth:`Registry.set_alias`, and promote/rollback in
:mod:`llmeco.registry.lifecycle` — appends a row to ``registry_alias_events`` in the same
transaction, then calls the ``on_alias_move`` hook (the CLI writes it to the audit ledger).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from llmeco.errors import InvalidRequest, NotFound
from llmeco.registry import tables as t
from llmeco.registry.artifacts import ArtifactStore, FileEntry
from llmeco.registry.records import (
    AliasEvent,
    Direction,
    EvalRecord,
    RegisteredModel,
    Version,
    as_utc,
    check_directions,
    utc_now,
)
from llmeco.registry.refs import LATEST, ModelRef, check_name, parse_ref
from llmeco.registry.scan import TRAINING_RECORD, read_json, scan_model_dir
from llmeco.settings import Settings
from llmeco.store import Store

__all__ = [
    "AliasEvent",
    "AliasHook",
    "EvalRecord",
    "NoChange",
    "RegisteredModel",
    "Registry",
    "Version",
    "flat_metrics",
]


class NoChange(Exception):
    """An alias move that would not move anything (raised inside the transaction)."""


#: Called after an alias move is committed (the CLI appends it to the audit ledger).
AliasHook = Callable[[AliasEvent], None]


class Registry:
    """Versions, aliases and eval runs in the store; file bytes in the artifact store."""

    def __init__(self, store: Store, home: Path, on_alias_move: AliasHook | None = None) -> None:
        self.store = store
        self.home = home
        self.artifacts = ArtifactStore(home / "artifacts")
        self.views = home / "registry"
        self.on_alias_move = on_alias_move

    @classmethod
    def open(cls, settings: Settings, on_alias_move: AliasHook | None = None) -> Registry:
        """The registry of the store and ``LLMECO_HOME`` the settings name (migrated)."""
        return cls(Store.from_settings(settings), settings.home, on_alias_move)

    # ---- registering -------------------------------------------------------------------

    def register(
        self,
        directory: Path,
        name: str,
        *,
        actor: str,
        description: str = "",
        progress: Callable[[int, int], None] | None = None,
    ) -> Version:
        """Copy a model directory into the artifact store as the next version of ``name``.

        The directory must be loadable (config.json, safetensors weights, a tokenizer).
        ``checkpoints/`` and ``tensorboard/`` are left out; pickled files and symlinks that
        leave the directory are refused. ``training.json`` (if present) becomes the lineage.
        ``progress(done_bytes, total_bytes)`` is called while copying.

        Raises:
            NotFound: ``directory`` does not exist. ConfigError: it is not a model directory.
            UnsafeFile: it holds pickled files or links outside itself.
        """
        check_name(name)
        scan = scan_model_dir(directory)
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, scan.total)

        entries = []
        for rel, path in scan.files:
            blob = self.artifacts.put(path, step)
            entries.append(FileEntry(rel, blob.sha256, blob.size))
        lineage = read_json(directory / TRAINING_RECORD)
        config = read_json(directory / "config.json")
        source = str(directory.resolve())
        number = self._retry(
            lambda s: self._insert_version(
                s, name, actor, source, description, lineage, config, entries
            )
        )
        return self.get(name, number)

    def _insert_version(
        self,
        s: Session,
        name: str,
        actor: str,
        source: str,
        description: str,
        lineage: dict[str, Any] | None,
        config: dict[str, Any] | None,
        entries: list[FileEntry],
    ) -> int:
        now = utc_now()
        bumped = s.execute(
            update(t.ModelRow)
            .where(t.ModelRow.name == name)
            .values(latest_version=t.ModelRow.latest_version + 1)
        )
        if bumped.rowcount == 0:  # type: ignore[attr-defined]
            s.add(
                t.ModelRow(
                    name=name,
                    created_at=now,
                    latest_version=1,
                    alias_epoch=0,
                    alias_changed_at=None,
                )
            )
            s.flush()
        model = s.execute(select(t.ModelRow).where(t.ModelRow.name == name)).scalar_one()
        row = t.VersionRow(
            model_id=model.id,
            version=model.latest_version,
            created_at=now,
            created_by=actor,
            source=source,
            description=description,
            lineage=json.dumps(lineage) if lineage is not None else None,
            config=json.dumps(config) if config is not None else None,
            total_bytes=sum(e.size for e in entries),
            file_count=len(entries),
        )
        s.add(row)
        s.flush()
        s.add_all(
            t.FileRow(version_id=row.id, path=e.path, sha256=e.sha256, size=e.size) for e in entries
        )
        return model.latest_version

    # ---- reading -----------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> Version:
        """Version ``version`` of ``name`` (the latest when None).

        Raises:
            NotFound: no such model or version.
        """
        with self.store.session() as s:
            model = self._model(s, name)
            number = model.latest_version if version is None else version
            return self._version(s, model, number)

    def resolve(self, name: str, alias: str) -> Version:
        """The version ``alias`` of ``name`` points to now (``latest``: the highest version).

        Raises:
            NotFound: no such model, or the alias is not set (the message lists those that are).
        """
        with self.store.session() as s:
            model = self._model(s, name)
            if alias == LATEST:
                return self._version(s, model, model.latest_version)
            row = s.get(t.AliasRow, (model.id, alias))
            if row is None:
                known = ", ".join(sorted(self._aliases(s, model.id))) or "none"
                raise NotFound(f"model {name!r} has no alias {alias!r} (aliases: {known})")
            version = s.get(t.VersionRow, row.version_id)
            assert version is not None  # the foreign key guarantees it
            return self._version(s, model, version.version)

    def resolve_ref(self, ref: str | ModelRef) -> Version:
        """The version a ``NAME@alias`` or ``NAME:version`` reference names.

        Raises:
            InvalidRequest: ``ref`` is not a registry reference. NotFound: as :meth:`resolve`.
        """
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        if parsed is None:
            raise InvalidRequest(
                f"{ref!r} is not a registry reference: use NAME@ALIAS or NAME:VERSION"
            )
        if parsed.alias is not None:
            return self.resolve(parsed.name, parsed.alias)
        return self.get(parsed.name, parsed.version)

    def alias_epoch(self, name: str) -> int:
        """A counter that grows on every alias move of ``name``: poll it to follow aliases.

        One indexed single-row read; a server compares it with the value it last saw and only
        calls :meth:`resolve` when it changed.
        """
        with self.store.session() as s:
            return self._model(s, name).alias_epoch

    def models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        with self.store.session() as s:
            rows = s.execute(select(t.ModelRow).order_by(t.ModelRow.name)).scalars().all()
            return [
                RegisteredModel(
                    r.name,
                    r.latest_version,
                    as_utc(r.created_at),
                    self._aliases(s, r.id),
                    r.alias_epoch,
                )
                for r in rows
            ]

    def versions(self, name: str) -> list[Version]:
        """Every version of ``name``, oldest first."""
        with self.store.session() as s:
            model = self._model(s, name)
            numbers = s.execute(
                select(t.VersionRow.version)
                .where(t.VersionRow.model_id == model.id)
                .order_by(t.VersionRow.version)
            ).scalars()
            return [self._version(s, model, n) for n in numbers]

    # ---- aliases -----------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        actor: str,
        action: str = "alias",
        note: str = "",
    ) -> AliasEvent | None:
        """Point ``alias`` of ``name`` at ``version``; None when it already points there.

        Raises:
            InvalidRequest: a bad alias name, or ``latest``. NotFound: no such version.
        """
        check_name(alias, "alias")
        if alias == LATEST:
            raise InvalidRequest(f"{LATEST!r} always means the highest version; it cannot be set")
        try:
            event: AliasEvent = self._retry(
                lambda s: self._move_alias(s, name, alias, version, action, actor, note)
            )
        except NoChange:
            return None
        self._notify(event)
        return event

    def _move_alias(
        self,
        s: Session,
        name: str,
        alias: str,
        to_version: int,
        action: str,
        actor: str,
        note: str,
    ) -> AliasEvent:
        """Inside transaction ``s``: move the alias, append its event, bump the epoch.

        :meth:`set_alias` (which promote and rollback go through) runs it in a retried
        transaction and runs the ``on_alias_move`` hook once that transaction has committed.

        Raises:
            NoChange: the alias already points at ``to_version`` (the transaction must roll back).
        """
        now = utc_now()
        # Write first: takes SQLite's write lock / the model's row lock before any read.
        bumped = s.execute(
            update(t.ModelRow)
            .where(t.ModelRow.name == name)
            .values(alias_epoch=t.ModelRow.alias_epoch + 1, alias_changed_at=now)
        )
        if bumped.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"no model named {name!r} in the registry")
        model = self._model(s, name)
        target = self._version_row(s, model, to_version)
        current = s.get(t.AliasRow, (model.id, alias))
        from_version: int | None = None
        if current is not None:
            old = s.get(t.VersionRow, current.version_id)
            from_version = old.version if old is not None else None
            if current.version_id == target.id:
                raise NoChange  # rolls the epoch bump back
            current.version_id = target.id
            current.updated_at = now
            current.updated_by = actor
        else:
            s.add(
                t.AliasRow(
                    model_id=model.id,
                    alias=alias,
                    version_id=target.id,
                    updated_at=now,
                    updated_by=actor,
                )
            )
        row = t.AliasEventRow(
            model_id=model.id,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            action=action,
            actor=actor,
            at=now,
            note=note,
        )
        s.add(row)
        s.flush()
        return AliasEvent(row.id, name, alias, from_version, to_version, action, actor, now, note)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of ``name`` (or of one alias), oldest first."""
        with self.store.session() as s:
            model = self._model(s, name)
            query = select(t.AliasEventRow).where(t.AliasEventRow.model_id == model.id)
            if alias is not None:
                query = query.where(t.AliasEventRow.alias == alias)
            rows = s.execute(query.order_by(t.AliasEventRow.id)).scalars().all()
            return [
                AliasEvent(
                    r.id,
                    name,
                    r.alias,
                    r.from_version,
                    r.to_version,
                    r.action,
                    r.actor,
                    as_utc(r.at),
                    r.note,
                )
                for r in rows
            ]

    def aliases_at(self, name: str, when: datetime) -> dict[str, int]:
        """Where each alias of ``name`` pointed at time ``when`` (from the alias history)."""
        when = as_utc(when)
        state: dict[str, int] = {}
        for event in self.history(name):
            if event.at > when:
                break
            if event.to_version is None:
                state.pop(event.alias, None)
            else:
                state[event.alias] = event.to_version
        return state

    # ---- evaluation runs ---------------------------------------------------------------

    def attach_eval(
        self,
        name: str,
        version: int,
        results: Mapping[str, Any],
        path: str = "",
        *,
        directions: Mapping[str, str] | None = None,
    ) -> EvalRecord:
        """Attach an evaluation run (the ``results.json`` of ``llmeco eval run``) to a version.

        ``directions`` (``task.metric`` → ``"higher"`` or ``"lower"``) says which way each
        metric improves; the evaluation knows, the registry stores it with the run so that
        promotion gates and diffs compare in the right direction. A metric left out is judged
        by its name (:func:`~llmeco.registry.records.default_lower_is_better`).

        Raises:
            InvalidRequest: ``results`` lacks run_id, suite or metrics, or a direction is
                neither ``higher`` nor ``lower``. NotFound: no such version.
        """
        try:
            run_id = str(results["run_id"])
            suite = results["suite"]
            metrics = {str(k): float(v) for k, v in flat_metrics(results).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"not an evaluation result (results.json): missing {exc}"
            ) from None
        stored = check_directions(directions or {}, metrics)
        now = utc_now()
        with self.store.session() as s:
            model = self._model(s, name)
            row = self._version_row(s, model, version)
            s.add(
                t.EvalRow(
                    version_id=row.id,
                    run_id=run_id,
                    suite=str(suite["name"]),
                    suite_sha256=str(suite.get("sha256", "")),
                    metrics=_dump_metrics(metrics, stored),
                    path=path,
                    created_at=now,
                )
            )
        return EvalRecord(
            name,
            version,
            run_id,
            str(suite["name"]),
            str(suite.get("sha256", "")),
            metrics,
            path,
            now,
            stored,
        )

    def evals(self, name: str, version: int, suite: str | None = None) -> list[EvalRecord]:
        """Eval runs attached to a version (of one suite, when given), newest first."""
        with self.store.session() as s:
            model = self._model(s, name)
            row = self._version_row(s, model, version)
            query = select(t.EvalRow).where(t.EvalRow.version_id == row.id)
            if suite is not None:
                query = query.where(t.EvalRow.suite == suite)
            rows = s.execute(query.order_by(t.EvalRow.id.desc())).scalars().all()
            out = []
            for r in rows:
                metrics, directions = _load_metrics(r.metrics)
                out.append(
                    EvalRecord(
                        name,
                        version,
                        r.run_id,
                        r.suite,
                        r.suite_sha256,
                        metrics,
                        r.path,
                        as_utc(r.created_at),
                        directions,
                    )
                )
            return out

    # ---- helpers -----------------------------------------------------------------------

    def _notify(self, event: AliasEvent) -> None:
        """Run the ``on_alias_move`` hook for a committed move (no-op without one)."""
        if self.on_alias_move is not None:
            self.on_alias_move(event)

    def _retry(self, work: Callable[[Session], Any]) -> Any:
        """Run ``work`` in a transaction, retrying when a concurrent writer got there first."""
        for attempt in range(5):
            try:
                with self.store.session() as s:
                    return work(s)
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _model(s: Session, name: str) -> t.ModelRow:
        row = s.execute(select(t.ModelRow).where(t.ModelRow.name == name)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no model named {name!r} in the registry (see `llmeco models list`)")
        return row

    @staticmethod
    def _version_row(s: Session, model: t.ModelRow, version: int) -> t.VersionRow:
        row = s.execute(
            select(t.VersionRow).where(
                t.VersionRow.model_id == model.id, t.VersionRow.version == version
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(
                f"model {model.name!r} has no version {version} (latest: {model.latest_version})"
            )
        return row

    @staticmethod
    def _aliases(s: Session, model_id: int) -> dict[str, int]:
        rows = s.execute(
            select(t.AliasRow.alias, t.VersionRow.version)
            .join(t.VersionRow, t.VersionRow.id == t.AliasRow.version_id)
            .where(t.AliasRow.model_id == model_id)
            .order_by(t.AliasRow.alias)
        ).all()
        return {alias: version for alias, version in rows}

    def _version(self, s: Session, model: t.ModelRow, number: int) -> Version:
        row = self._version_row(s, model, number)
        files = s.execute(
            select(t.FileRow).where(t.FileRow.version_id == row.id).order_by(t.FileRow.path)
        ).scalars()
        aliases = tuple(a for a, v in self._aliases(s, model.id).items() if v == number)
        return Version(
            name=model.name,
            version=row.version,
            created_at=as_utc(row.created_at),
            created_by=row.created_by,
            source=row.source,
            description=row.description,
            lineage=json.loads(row.lineage) if row.lineage else None,
            config=json.loads(row.config) if row.config else None,
            files=tuple(FileEntry(f.path, f.sha256, f.size) for f in files),
            total_bytes=row.total_bytes,
            aliases=aliases,
        )


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """``task.metric`` → value for every numeric metric of a ``results.json``."""
    out: dict[str, float] = {}
    for task_name, task in results["tasks"].items():
        for metric, value in task["metrics"].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{task_name}.{metric}"] = float(value)
    return out


def _dump_metrics(metrics: Mapping[str, float], directions: Mapping[str, Direction]) -> str:
    """The ``registry_evals.metrics`` column (JSON text).

    Without directions it is the flat ``{"task.metric": value}`` object every run was stored
    as before directions existed; with them, ``{"values": {...}, "directions": {...}}``
    (``task.metric`` → ``"higher"`` / ``"lower"``). :func:`_load_metrics` reads both.
    """
    if not directions:
        return json.dumps(dict(metrics))
    return json.dumps({"values": dict(metrics), "directions": dict(directions)})


def _load_metrics(text: str) -> tuple[dict[str, float], dict[str, Direction]]:
    """Metric values and stored directions from the ``metrics`` column (either form).

    The flat form holds only numbers, so an object whose ``values`` is itself an object can
    only be the form with directions.
    """
    raw = json.loads(text)
    if isinstance(raw.get("values"), dict):
        values = {str(k): float(v) for k, v in raw["values"].items()}
        return values, check_directions(raw.get("directions") or {}, values)
    return {str(k): float(v) for k, v in raw.items()}, {}
