"""The built-in redaction rules, registered through the same hook as a plugin's."""

from __future__ import annotations

from llmeco.governance.redact import builtin_rules
from llmeco.plugins import RedactionRuleSpec, hookimpl


@hookimpl
def register_redaction_rules() -> list[RedactionRuleSpec]:
    """Secrets, emails, IBANs, cards, SSN/NINO, IP addresses and phone numbers."""
    return builtin_rules()
