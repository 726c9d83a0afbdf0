"""The learn app's request handling: profiles, feedback and recommendations.

One :class:`LearnApp` per server app (kept on ``app.state``): the profile database under
``LLMECO_HOME`` and the content library, embedded on first use with the server's embedder.
Database calls and embedding run on worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import re
from typing import cast

import anyio
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from llmeco.apps.spec import PromptSpec
from llmeco.engine.request import SamplingParams
from llmeco.errors import NotFound, ServiceUnavailable
from llmeco.server import apprun
from llmeco.server.openai.shared import Usage, usage
from llmeco.server.state import ServerState, get_context, get_state
from llmeco_learn import protocol as p
from llmeco_learn.library import Library, default_library_dir
from llmeco_learn.profiles import Attempt, Profile, ProfileStore, db_path
from llmeco_learn.recommend import Recommendation, recommend, topic_stats, weak_topics


class LearnApp:
    """The profile store and the (lazily embedded) library of one server.

    Both open on first use, the library first: a server without the embedding model answers
    404 (the app is not available there, as the support desk without a desk) before any file
    is touched.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._profiles: ProfileStore | None = None
        self._library: Library | None = None
        self._lock = asyncio.Lock()

    async def library(self) -> Library:
        """The content library, embedded on first use (404 when the server has no embedder)."""
        if self._library is None:
            async with self._lock:
                if self._library is None:
                    embedder = self.state.embedder
                    if embedder is None:
                        raise NotFound(
                            "the learn app needs the embedding model, which this server does "
                            "not serve; start it with embeddings on"
                        )
                    folder = default_library_dir()
                    self._library = await anyio.to_thread.run_sync(Library.load, folder, embedder)
        return self._library

    async def profiles(self) -> ProfileStore:
        """The profile database (opened after the library, on first use)."""
        await self.library()
        if self._profiles is None:
            path = db_path(self.state.settings.home)
            try:
                self._profiles = await anyio.to_thread.run_sync(ProfileStore, path)
            except (OSError, SQLAlchemyError) as exc:
                raise ServiceUnavailable(f"cannot open the learn database {path}: {exc}") from exc
        return self._profiles


def learn_app(request: Request) -> LearnApp:
    """This server's :class:`LearnApp`, created on the first request."""
    app = getattr(request.app.state, "llmeco_learn", None)
    if app is None:
        app = LearnApp(get_state(request))
        request.app.state.llmeco_learn = app
    return cast(LearnApp, app)


async def profile_out(app: LearnApp, profile: Profile) -> p.LearnerOut:
    """A profile with its per-topic summary."""
    library = await app.library()
    stats = topic_stats(library, profile.history)
    weak = weak_topics(stats)
    return p.LearnerOut(
        id=profile.id,
        level=profile.level,
        goals=profile.goals,
        history=[p.AttemptOut(item_id=a.item_id, score=a.score, at=a.at) for a in profile.history],
        topics=[
            p.TopicOut(
                topic=s.topic,
                attempts=s.attempts,
                mean_score=round(s.mean, 4),
                mastered_level=s.mastered,
                weak=s.topic in weak,
            )
            for s in sorted(stats.values(), key=lambda s: s.topic)
        ],
        weak_topics=weak,
    )


async def put_learner(request: Request, learner_id: str, body: p.LearnerIn) -> p.LearnerOut:
    """Create or replace a profile; every history item must be in the library."""
    app = learn_app(request)
    history = None
    if body.history is not None:
        library = await app.library()
        unknown = sorted({a.item_id for a in body.history if library.item(a.item_id) is None})
        if unknown:
            raise NotFound(f"unknown library item(s): {', '.join(unknown[:10])}", param="history")
        history = [Attempt(a.item_id, a.score) for a in body.history]
    store = await app.profiles()
    profile = await anyio.to_thread.run_sync(store.put, learner_id, body.level, body.goals, history)
    return await profile_out(app, profile)


async def get_learner(request: Request, learner_id: str) -> p.LearnerOut:
    """A learner's profile (404 when unknown)."""
    app = learn_app(request)
    store = await app.profiles()
    profile = await anyio.to_thread.run_sync(store.get, learner_id)
    return await profile_out(app, profile)


async def feedback(request: Request, body: p.FeedbackRequest) -> p.LearnerOut:
    """Record a score (404 for an unknown learner or item) and return the updated profile."""
    app = learn_app(request)
    library = await app.library()
    if library.item(body.item_id) is None:
        raise NotFound(f"no library item {body.item_id!r}", param="item_id")
    store = await app.profiles()
    profile = await anyio.to_thread.run_sync(
        store.record, body.learner_id, body.item_id, body.score
    )
    return await profile_out(app, profile)


async def recommend_items(request: Request, body: p.RecommendRequest) -> p.RecommendResponse:
    """The next ``k`` items with reasons, and (``explain``) one model-written sentence each."""
    app = learn_app(request)
    store = await app.profiles()
    profile = await anyio.to_thread.run_sync(store.get, body.learner_id)
    library = await app.library()
    goal_vector = None
    if profile.goals and app.state.embedder is not None:
        vectors = await app.state.embedder.aembed([" ".join(profile.goals)])
        goal_vector = vectors[0]
    recs = recommend(library, profile.history, profile.level, body.k, goal_vector)
    model: str | None = None
    explanations: list[str | None] = [None] * len(recs)
    total: Usage | None = None
    if body.explain and recs:
        results = await asyncio.gather(
            *(_explain(app.state, request, body, profile, rec) for rec in recs)
        )
        explanations = [text for text, _, _, _ in results]
        model = results[0][1]
        total = usage(sum(r[2] for r in results), sum(r[3] for r in results))
    stats = topic_stats(library, profile.history)
    return p.RecommendResponse(
        id=f"learn-{get_context(request).request_id}",
        learner_id=profile.id,
        model=model,
        weak_topics=weak_topics(stats),
        items=[
            p.RecommendedItem(
                id=r.item.id,
                title=r.item.title,
                topic=r.item.topic,
                difficulty=r.item.difficulty,
                kind=r.item.kind,
                score=round(r.score, 4),
                similarity=round(r.similarity, 4),
                target_difficulty=r.target_difficulty,
                reasons=r.reasons,
                explanation=text,
            )
            for r, text in zip(recs, explanations, strict=True)
        ],
        usage=total,
    )


def explanation_spec(profile: Profile, rec: Recommendation, max_tokens: int) -> PromptSpec:
    """The prompt asking for one sentence on why ``rec`` is a good next step."""
    goals = "; ".join(profile.goals) or "none given"
    item = rec.item
    user = (
        f"Learner goals: {goals}.\nRecommended {item.kind}: '{item.title}' "
        f"(topic {item.topic}, difficulty {item.difficulty} of 3).\n"
        f"Reasons: {'; '.join(rec.reasons)}.\n"
        "Explain to the learner in one sentence why this is a good next step."
    )
    return PromptSpec(
        [
            {
                "role": "system",
                "content": "You are a friendly tutor. Answer with exactly one short sentence.",
            },
            {"role": "user", "content": user},
        ],
        SamplingParams(max_tokens=max_tokens, temperature=0.0),
        parse=first_sentence,
    )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (all of it, stripped, when it has no sentence end)."""
    text = " ".join(text.split())
    return _SENTENCE_END.split(text, maxsplit=1)[0] if text else text


async def _explain(
    state: ServerState,
    request: Request,
    body: p.RecommendRequest,
    profile: Profile,
    rec: Recommendation,
) -> tuple[str, str, int, int]:
    spec = explanation_spec(profile, rec, body.max_tokens)
    call = await apprun.start(state, request, body.model, spec)
    text = await call.text(request)
    gen = call.generation
    return spec.parse(text), call.name, gen.prompt_tokens, gen.completion_tokens
