"""One audit-ledger entry per agent tool execution.

Each execution is a ``tool`` entry (:class:`~llmeco.governance.audit.ledger.ToolRecord`, the
same kind ``/mcp`` writes): the tool's name, the caller's key id as actor, the request id,
the SHA-256 of the arguments (canonical JSON of the parsed object; of the raw text when it is
not JSON), the SHA-256 of the result text the model read (UTF-8, exactly
``agent_steps[].result``, errors included), the duration, a status and ``transport:
"agent:<name>"``. Status: 200 ok, the HTTP status of the library error a tool raised (403 for
a knowledge base the key may not read, 404 for an unknown tool, 429 over a limit …), 502 for
a tool's own error result (an MCP server's ``isError``), 504 for a timeout, 500 for a bug,
499 for an execution cancelled midway (the client left).

The result reaches the model (and the caller) only after its entry is committed; if the
ledger cannot commit, the agent stops with a 503 rather than go on unaudited.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging

from llmeco.apps.agents import ToolError, ToolExecution
from llmeco.errors import ServiceUnavailable
from llmeco.governance.audit import AuditLedger, canonical_json
from llmeco.governance.audit.ledger import ToolRecord
from llmeco.server.errors import describe

log = logging.getLogger("llmeco.server.agents")


def status_of(exc: BaseException | None) -> int:
    """The status an execution's outcome is recorded with (see the module doc)."""
    if exc is None:
        return 200
    if isinstance(exc, TimeoutError):
        return 504
    if isinstance(exc, ToolError):
        return 502
    return describe(exc)[0]


class LedgerObserver:
    """Records a request's tool executions in the ledger (an agent's ``ToolObserver``)."""

    def __init__(self, ledger: AuditLedger, actor: str | None, request_id: str, agent: str):
        self.ledger = ledger
        self.actor = actor
        self.request_id = request_id
        self.transport = agent

    def record(self, execution: ToolExecution, status: int) -> ToolRecord:
        """The ledger record of one execution."""
        step = execution.step
        if execution.arguments is not None:
            arguments = canonical_json(execution.arguments)
        else:
            arguments = step.arguments.encode("utf-8")
        return ToolRecord(
            tool=step.tool,
            actor=self.actor,
            request_id=self.request_id,
            arguments_sha256=hashlib.sha256(arguments).hexdigest(),
            result_sha256=hashlib.sha256(step.result.encode("utf-8")).hexdigest()
            if status != 499
            else "",
            duration_ms=step.duration_ms,
            status=status,
            transport=self.transport,
        )

    async def executed(self, execution: ToolExecution) -> None:
        """Commit the entry; 503 (the agent stops) when the ledger cannot."""
        record = self.record(execution, status_of(execution.exception))
        try:
            await self.ledger.arecord_tool(record)
        except Exception as exc:
            log.error("agent tool call not audited; agent stopped", extra={"tool": record.tool})
            raise ServiceUnavailable(
                f"the audit ledger is unavailable, so the agent stopped: {exc}"
            ) from None

    def cancelled(self, execution: ToolExecution) -> None:
        """Queue a 499 entry without waiting."""
        with contextlib.suppress(Exception):
            self.ledger.record_tool(self.record(execution, 499))
