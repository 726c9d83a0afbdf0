"""``POST /v1/apps/clinical/analyze``: de-identify, extract, flag, summarise.

The note is de-identified first; only the redacted text goes to the model, into the response
and into anything stored. The model calls (extraction, summary) run concurrently through
:func:`llmeco.server.apprun.start`, with the same context checks, limits, metrics and
accounting as chat: a note too long for the model's context is a 400.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from llmeco.apps.spec import PromptSpec
from llmeco.errors import InvalidRequest
from llmeco.server import apprun
from llmeco.server.openai.shared import usage
from llmeco.server.state import get_context, get_state
from llmeco_clinical import deid, extract, interactions, lexicon, summary
from llmeco_clinical import protocol as p


async def _run(request: Request, model: str | None, spec: PromptSpec) -> tuple[Any, str, int, int]:
    call = await apprun.start(get_state(request), request, model, spec)
    text = await call.text(request)
    gen = call.generation
    return spec.parse(text), call.name, gen.prompt_tokens, gen.completion_tokens


async def analyze(request: Request, body: p.AnalyzeRequest) -> p.AnalyzeResponse:
    """Serve one analysis."""
    if not body.note.strip():
        raise InvalidRequest("note is empty", param="note")
    lex = lexicon.load()
    redacted, spans = deid.deidentify(body.note)
    rules = extract.extract_rules(redacted, lex)
    want_llm = body.extractor != "rules"
    jobs = []
    if want_llm:
        jobs.append(_run(request, body.model, extract.extraction_spec(redacted, body.max_tokens)))
    if body.summary == "llm":
        jobs.append(
            _run(request, body.model, summary.summary_spec(redacted, body.summary_max_tokens))
        )
    results = list(await asyncio.gather(*jobs))
    model = results[0][1] if results else None
    used = usage(sum(r[2] for r in results), sum(r[3] for r in results)) if results else None
    found = rules
    if want_llm:
        llm: extract.Extraction = results[0][0]
        found = llm if body.extractor == "llm" else extract.combine(rules, llm, redacted, lex)
    flags = interactions.check([m.name for m in found.medications], lex)
    written: str | None = None
    if body.summary == "llm":
        written = summary.with_disclaimer(results[-1][0])
    elif body.summary == "template":
        written = summary.with_disclaimer(summary.template_summary(found, flags))
    return p.AnalyzeResponse(
        id=f"clinical-{get_context(request).request_id}",
        model=model,
        disclaimer=summary.DISCLAIMER,
        redacted_note=redacted,
        phi=[p.PhiCount(kind=k, count=n) for k, n in sorted(deid.counts(spans).items())],
        problems=found.problems,
        medications=[
            p.MedicationOut(
                name=m.name,
                written_as=m.written,
                dose=m.dose,
                frequency=m.frequency,
                known=lex.lookup(m.name) is not None,
                source=m.source,
            )
            for m in found.medications
        ],
        allergies=found.allergies,
        interactions=[
            p.FlagOut(drugs=list(f.drugs), severity=f.severity, warning=f.warning) for f in flags
        ],
        summary=written,
        extractor=body.extractor,
        usage=used,
    )
