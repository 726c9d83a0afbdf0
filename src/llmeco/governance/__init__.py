"""Governance: API keys, scopes, limits, the tamper-evident audit ledger, PII redaction and
encryption at rest."""
