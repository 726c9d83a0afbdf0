"""The clinical-note app as an llmeco plugin (entry point ``llmeco: clinical``)."""

from __future__ import annotations

from llmeco.plugins.hookspecs import hookimpl
from llmeco.plugins.specs import AppSpec, RedactionRuleSpec, RouteScope


@hookimpl
def register_apps() -> list[AppSpec]:
    """``POST /v1/apps/clinical/analyze`` under the ``chat`` scope."""
    from llmeco_clinical.router import router

    return [
        AppSpec(
            name="clinical",
            routers=(router,),
            scopes=(RouteScope("POST", "/v1/apps/clinical/analyze", "chat"),),
            description="Clinical-note analysis: de-identification, problems/medications/"
            "allergies extraction, interaction flags, plain-language summary.",
        )
    ]


@hookimpl
def register_redaction_rules() -> list[RedactionRuleSpec]:
    """Clinical identifiers anchored on a label or title (MRN, date of birth, names,
    addresses, labelled phones); plain dates stay app-local (see ``deid.RULES``)."""
    from llmeco_clinical.deid import GLOBAL_RULES

    return list(GLOBAL_RULES)
