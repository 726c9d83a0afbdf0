"""What a key may do: scope names, the scope each route needs, and the no-escalation rule.

Scopes
======

============  ==============================================================================
scope         grants
============  ==============================================================================
chat          ``POST /v1/chat/completions`` and the apps built on chat (``/v1/tasks/*``,
              ``/v1/apps/*``, and the MCP endpoint ``/mcp``, whose tools are chat, the
              tasks and knowledge-base search); reading and searching knowledge bases
              (``GET /v1/kb*``, ``POST /v1/kb/{name}/search``): that is the retrieval half
              of ``support:<kb>`` chat, governed like it (the key's model allow-list must
              admit ``support:<kb>``), not a raw ``embeddings`` call
completions   ``POST /v1/completions``
embeddings    ``POST /v1/embeddings``
audio         ``/v1/audio/*``: transcription, translation, speech, voices; with ``chat``
              also the voice support desk ``/v1/apps/voice/{kb}``
models        model metadata only: ``/v1/models``, ``/tokenize``, ``/detokenize`` (no
              generation); every generation or embedding scope includes it, because a
              client that may use a model must be able to look it up
admin         ``/admin/*``: keys, usage of other keys, serving aliases, erasing a support
              session's records (``DELETE /admin/sessions/{id}``), the audit ledger
              (``/admin/audit/*``); creating, filling and deleting knowledge bases
              (``POST``/``DELETE /v1/kb*`` except search)
============  ==============================================================================

Public routes (no key): ``/health`` and ``/ready`` (orchestrator probes must not hold a
secret), ``/metrics`` (Prometheus scrapes without credentials; it carries counts, never
content — bind it to an internal network in production), ``GET /`` (the chat page: static
HTML, every call it makes carries a key) and the OpenAPI docs. ``GET /v1/usage`` needs any
valid key and shows that key's own usage only.

Any route not in :data:`ROUTES` needs ``admin`` (fail closed); a test checks that every
route the app serves is listed, so a new route gets a deliberate choice.

No escalation
=============

A key can only hand out what it holds (:func:`check_can_grant`): scopes ⊆ its scopes, models ⊆
its models (an allow-listed key cannot mint an every-model key), each limit ≤ its own (a
limited key cannot mint an unlimited one), expiry ≤ its own. A key manages (revokes,
re-limits, reads usage of) only keys it dominates in the same sense (:func:`check_can_manage`)
— so raising your own limits is impossible, and a lesser admin cannot touch the root key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from llmeco.errors import ConfigError, InvalidRequest, PermissionDenied
from llmeco.plugins import get_registry

CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
AUDIO = "audio"
MODELS = "models"
ADMIN = "admin"

#: Every scope, in display order.
SCOPES: tuple[str, ...] = (CHAT, COMPLETIONS, EMBEDDINGS, AUDIO, MODELS, ADMIN)


@dataclass(frozen=True)
class Requirement:
    """What a route needs: nothing (public), any valid key, or one of ``scopes``."""

    public: bool = False
    scopes: frozenset[str] = frozenset()

    def allows(self, scopes: frozenset[str]) -> bool:
        """Whether a key holding ``scopes`` may call the route (public routes: anyone)."""
        return self.public or not self.scopes or bool(self.scopes & scopes)

    def describe(self) -> str:
        """``"chat"`` or ``"one of chat, models"``, for error messages."""
        names = [s for s in SCOPES if s in self.scopes]
        return names[0] if len(names) == 1 else "one of " + ", ".join(names)


PUBLIC = Requirement(public=True)
ANY_KEY = Requirement()


def needs(*scopes: str) -> Requirement:
    """A requirement satisfied by any one of ``scopes``."""
    return Requirement(scopes=frozenset(scopes))


_METADATA = needs(MODELS, CHAT, COMPLETIONS, EMBEDDINGS, AUDIO)
_TOKENIZER = needs(MODELS, CHAT, COMPLETIONS)

#: ``(path pattern, requirement)``; a pattern ending in ``/*`` covers everything below it.
ROUTES: tuple[tuple[str, Requirement], ...] = (
    ("/", PUBLIC),
    ("/favicon.ico", PUBLIC),
    ("/health", PUBLIC),
    ("/ready", PUBLIC),
    ("/metrics", PUBLIC),
    ("/docs", PUBLIC),
    ("/docs/oauth2-redirect", PUBLIC),
    ("/redoc", PUBLIC),
    ("/openapi.json", PUBLIC),
    ("/v1/chat/completions", needs(CHAT)),
    ("/v1/completions", needs(COMPLETIONS)),
    ("/v1/embeddings", needs(EMBEDDINGS)),
    ("/v1/models", _METADATA),
    ("/v1/models/*", _METADATA),
    ("/tokenize", _TOKENIZER),
    ("/detokenize", _TOKENIZER),
    ("/v1/audio/*", needs(AUDIO)),
    ("/mcp", needs(CHAT)),
    ("/v1/usage", ANY_KEY),
    ("/admin/sessions/*", needs(ADMIN)),  # erasure of a support session's records
    ("/admin", needs(ADMIN)),
    ("/admin/*", needs(ADMIN)),
)

_EXACT = {p: r for p, r in ROUTES if not p.endswith("/*")}
_PREFIXES = sorted(((p[:-1], r) for p, r in ROUTES if p.endswith("/*")), key=lambda pr: -len(pr[0]))
#: What an unlisted path needs: fail closed.
DEFAULT = needs(ADMIN)


@dataclass(frozen=True)
class _AppRoute:
    method: str
    pattern: re.Pattern[str]
    prefix: bool
    length: int
    requirement: Requirement


def _compile(method: str, path: str, scope: str) -> _AppRoute:
    prefix = path.endswith("/")
    body = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path))
    pattern = re.compile(body if prefix else body + "$")
    return _AppRoute(method.upper(), pattern, prefix, len(path), needs(scope))


_app_tables: dict[int, list[_AppRoute]] = {}


def app_routes() -> list[_AppRoute]:
    """Every registered app's route scopes, most specific first (cached per registry).

    Raises:
        ConfigError: an app names an unknown scope, or a plugin's app claims a path under
            ``/admin`` or one of the core routes (only llmeco's own apps may).
    """
    registry = get_registry()
    table = _app_tables.get(id(registry))
    if table is not None:
        return table
    sources = registry.app_sources()
    builtin = {p.name for p in registry.plugins if p.builtin}
    table = []
    for app in registry.apps():
        for rs in app.scopes:
            if rs.scope not in SCOPES:
                raise ConfigError(
                    f"app {app.name!r}: route {rs.path} names unknown scope {rs.scope!r}; "
                    f"valid scopes: {', '.join(SCOPES)}"
                )
            core = rs.path in _EXACT or rs.path == "/admin" or rs.path.startswith("/admin/")
            if core and sources.get(app.name) not in builtin:
                raise ConfigError(
                    f"app {app.name!r} (plugin {sources.get(app.name)}) may not set the scope "
                    f"of {rs.path}: core and /admin routes keep llmeco's own scopes"
                )
            table.append(_compile(rs.method, rs.path, rs.scope))
    table.sort(key=lambda r: -r.length)
    _app_tables.clear()
    _app_tables[id(registry)] = table
    return table


def requirement(path: str, method: str = "*") -> Requirement:
    """The requirement of a request (``DEFAULT`` for paths no route claims).

    Core routes first, then the routes apps declare (:class:`llmeco.plugins.RouteScope`,
    built-in apps included), then the core prefixes such as ``/admin/*``.
    """
    found = _EXACT.get(path)
    if found is not None:
        return found
    method = method.upper()
    for route in app_routes():
        if (method == "*" or route.method in ("*", method)) and route.pattern.match(path):
            return route.requirement
    for prefix, req in _PREFIXES:
        if path.startswith(prefix):
            return req
    return DEFAULT


def declared(route_path: str, method: str = "*") -> bool:
    """Whether a route template (``/v1/models/{model}``) is covered by :data:`ROUTES` or an
    app's route scopes."""
    concrete = re.sub(r"\{[^}]*\}", "x", route_path)
    method = method.upper()
    return (
        concrete in _EXACT
        or any(
            (method == "*" or r.method in ("*", method)) and r.pattern.match(concrete)
            for r in app_routes()
        )
        or any(concrete.startswith(p) for p, _ in _PREFIXES)
    )


def parse_scopes(value: str | Iterable[str]) -> frozenset[str]:
    """``"chat,completions"`` (or a list) → a scope set; unknown names are a 400/usage error."""
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = frozenset(s.strip().lower() for s in items if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise InvalidRequest(
            f"unknown scope(s): {', '.join(unknown)}; valid scopes: {', '.join(SCOPES)}",
            param="scopes",
        )
    if not scopes:
        raise InvalidRequest(
            f"a key needs at least one scope ({', '.join(SCOPES)})", param="scopes"
        )
    return scopes


def parse_models(value: str | Iterable[str] | None) -> frozenset[str]:
    """``"m1,m2"`` (or a list) → a model allow-list; empty means every model."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    return frozenset(m.strip() for m in items if m.strip())


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What a key holds: scopes, models (empty = all), limits (None = unlimited), expiry."""

    scopes: frozenset[str]
    models: frozenset[str] = frozenset()
    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None
    expires_at: datetime | None = None


def _limit_problem(name: str, own: int | None, wanted: int | None) -> str | None:
    if own is None:
        return None
    if wanted is None:
        return f"{name} unlimited (yours is {own})"
    if wanted > own:
        return f"{name} {wanted} (yours is {own})"
    return None


def excess(actor: Grant, wanted: Grant) -> list[str]:
    """Everything in ``wanted`` that ``actor`` does not hold, in words (empty: nothing)."""
    problems = []
    extra = sorted(wanted.scopes - actor.scopes)
    if extra:
        problems.append(f"scope(s) {', '.join(extra)}")
    if actor.models:
        if not wanted.models:
            problems.append(f"every model (you may use only {', '.join(sorted(actor.models))})")
        elif wanted.models - actor.models:
            problems.append(f"model(s) {', '.join(sorted(wanted.models - actor.models))}")
    for name, own, want in (
        ("rpm", actor.rpm, wanted.rpm),
        ("tpm", actor.tpm, wanted.tpm),
        ("daily_tokens", actor.daily_tokens, wanted.daily_tokens),
    ):
        problem = _limit_problem(name, own, want)
        if problem:
            problems.append(problem)
    if actor.expires_at is not None and (
        wanted.expires_at is None or wanted.expires_at > actor.expires_at
    ):
        problems.append(f"an expiry later than yours ({actor.expires_at.isoformat()})")
    return problems


def check_can_grant(actor: Grant, wanted: Grant) -> None:
    """Raise ``PermissionDenied`` unless ``actor`` holds everything ``wanted`` asks for."""
    problems = excess(actor, wanted)
    if problems:
        raise PermissionDenied(
            "a key cannot grant more than it holds; this asks for " + "; ".join(problems)
        )


def check_can_manage(actor: Grant, target: Grant, what: str) -> None:
    """Raise ``PermissionDenied`` unless ``actor`` dominates ``target`` (``what``: the action)."""
    problems = excess(actor, target)
    if problems:
        raise PermissionDenied(
            f"this key cannot {what}: the target key holds more than this key does ("
            + "; ".join(problems)
            + ")"
        )
