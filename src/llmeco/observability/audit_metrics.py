"""Audit-ledger gauges read at scrape time: how far checkpoints lag the entries, how old the
newest checkpoint is, and whether its signature verifies under the server's own key.

Operators alert on a stale checkpoint (entries nobody has signed for a while) and on a
checkpoint that does not verify (a tampered row, or replicas signing with different keys).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmeco.governance.audit import AuditLedger, latest_checkpoint

log = logging.getLogger(__name__)


class AuditCollector(Collector):
    """Reads the ledger's frontier and its newest stored checkpoint on each scrape."""

    def __init__(self, ledger: AuditLedger) -> None:
        self._ledger = ledger

    def collect(self) -> Iterator[Metric]:
        size, covered, _ = self._ledger.frontier()
        yield GaugeMetricFamily(
            "llmeco_audit_entries",
            "Entries committed to the audit ledger (this writer's view).",
            value=size,
        )
        yield GaugeMetricFamily(
            "llmeco_audit_checkpointed_entries",
            "Entries covered by the newest signed checkpoint (this writer's view).",
            value=covered,
        )
        try:
            checkpoint = latest_checkpoint(self._ledger.store)
        except Exception as exc:  # the store is down: the gauges below go missing
            log.warning("cannot read the newest audit checkpoint: %s", exc)
            return
        if checkpoint is None:
            return
        yield GaugeMetricFamily(
            "llmeco_audit_last_checkpoint_timestamp_seconds",
            "Unix time of the newest signed checkpoint.",
            value=datetime.fromisoformat(checkpoint.timestamp).timestamp(),
        )
        yield GaugeMetricFamily(
            "llmeco_audit_checkpoint_verified",
            "1 when the newest checkpoint's signature verifies under this server's key, else 0.",
            value=1.0 if checkpoint.signature_ok(self._ledger.signer.public_key) else 0.0,
        )
