"""Aliases, their history, promote gates and rollback; on SQLite and PG."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from reg_helpers import eval_results, make_model_dir

from conftest import Recorder
from llmeco.errors import GateFailed, InvalidRequest, NotFound
from llmeco.registry import Registry
from llmeco.registry.lifecycle import Gate, promote, rollback, rollback_target


def _three_versions(registry: Registry, tmp_path: Path) -> None:
    for i in range(3):
        registry.register(
            make_model_dir(tmp_path / f"m{i}", weights=f"w{i}".encode()), "sup", actor="t"
        )


def test_alias_moves_are_recorded_with_who_when_from_to(
    registry: Registry, tmp_path: Path, moves: Recorder
) -> None:
    _three_versions(registry, tmp_path)
    epoch = registry.alias_epoch("sup")
    first = registry.set_alias("sup", 1, "staging", actor="alice")
    assert first is not None and (first.from_version, first.to_version) == (None, 1)
    assert registry.set_alias("sup", 1, "staging", actor="alice") is None  # no move, no event
    registry.set_alias("sup", 2, "staging", actor="bob")
    assert registry.resolve("sup", "staging").version == 2
    assert registry.resolve("sup", "latest").version == 3
    assert registry.get("sup", 2).aliases == ("staging",)
    assert registry.alias_epoch("sup") == epoch + 2
    history = registry.history("sup")
    assert [(e.alias, e.from_version, e.to_version, e.actor) for e in history] == [
        ("staging", None, 1, "alice"),
        ("staging", 1, 2, "bob"),
    ]
    assert [e.id for e in moves.events] == [e.id for e in history]  # the hook saw each move
    assert registry.aliases_at("sup", history[0].at) == {"staging": 1}
    assert registry.aliases_at("sup", history[0].at - timedelta(seconds=1)) == {}
    with pytest.raises(NotFound, match="aliases: staging"):
        registry.resolve("sup", "production")
    with pytest.raises(InvalidRequest):
        registry.set_alias("sup", 1, "latest", actor="x")
    with pytest.raises(NotFound, match="no version 9"):
        registry.set_alias("sup", 9, "staging", actor="x")
    assert registry.resolve_ref("sup:1").version == 1
    assert registry.resolve_ref("sup@staging").version == 2


def test_promote_gate_blocks_a_worse_model_and_lets_a_better_one_through(
    registry: Registry, tmp_path: Path, moves: Recorder
) -> None:
    """Must-show 2 at the library level (the CLI test runs it end to end)."""
    _three_versions(registry, tmp_path)
    scores = {1: (0.80, 12.0), 2: (0.70, 11.0), 3: (0.85, 10.5)}  # (acc, perplexity)
    for version, (acc, ppl) in scores.items():
        registry.attach_eval(
            "sup",
            version,
            eval_results("shipped", {"mc": {"acc": acc}, "ppl": {"perplexity": ppl}}),
        )
    registry.set_alias("sup", 1, "staging", actor="t")
    event, results = promote(registry, "sup", actor="t", gates=(Gate.parse("mc.acc:shipped:0.02"),))
    assert event.to_version == 1 and results[0].current is None  # nothing to compare with yet

    registry.set_alias("sup", 2, "staging", actor="t")
    with pytest.raises(GateFailed, match=r"mc\.acc on suite shipped.*sup:2 = 0\.7.*sup:1 = 0\.8"):
        promote(registry, "sup", actor="t", gates=(Gate.parse("mc.acc:shipped:0.02"),))
    assert registry.resolve("sup", "production").version == 1  # unchanged
    # a perplexity gate: lower is better, so 11.0 vs 12.0 passes
    promote_ok, _ = promote(
        registry, "sup", actor="t", gates=(Gate.parse("ppl.perplexity:shipped:0"),)
    )
    assert promote_ok.to_version == 2

    registry.set_alias("sup", 3, "staging", actor="t")
    event, results = promote(
        registry,
        "sup",
        actor="carol",
        gates=(Gate.parse("mc.acc:shipped:0"), Gate.parse("ppl.perplexity:shipped:1%")),
    )
    assert (event.from_version, event.to_version, event.action) == (2, 3, "promote")
    assert all(r.passed for r in results)
    assert moves.events[-1].actor == "carol"


def test_gate_errors_say_what_is_missing(registry: Registry, tmp_path: Path) -> None:
    _three_versions(registry, tmp_path)
    registry.set_alias("sup", 1, "production", actor="t")
    registry.set_alias("sup", 2, "staging", actor="t")
    registry.attach_eval("sup", 2, eval_results("shipped", {"mc": {"acc": 0.9}}))
    with pytest.raises(GateFailed, match="sup:1 has no eval run of suite 'shipped'"):
        promote(registry, "sup", actor="t", gates=(Gate.parse("mc.acc:shipped:0"),))
    registry.attach_eval("sup", 1, eval_results("shipped", {"mc": {"acc": 0.5}}))
    with pytest.raises(GateFailed, match=r"metric 'mc\.f1' is not in"):
        promote(registry, "sup", actor="t", gates=(Gate.parse("mc.f1:shipped:0"),))
    for bad in ("mc.acc:shipped", "mc.acc:shipped:-1", "mc.acc:shipped:x", ":s:1"):
        with pytest.raises(InvalidRequest):
            Gate.parse(bad)
    assert Gate.parse("a.b:s:5%").max_drop == pytest.approx(0.05)


def test_rollback_goes_back_one_promotion_at_a_time(registry: Registry, tmp_path: Path) -> None:
    _three_versions(registry, tmp_path)
    with pytest.raises(NotFound):
        rollback(registry, "nope", actor="t")
    for v in (1, 2, 3):
        registry.set_alias("sup", v, "staging", actor="t")
        promote(registry, "sup", actor="t")
    assert registry.resolve("sup", "production").version == 3
    assert rollback(registry, "sup", actor="t").to_version == 2
    assert rollback(registry, "sup", actor="t").to_version == 1
    with pytest.raises(InvalidRequest, match="no previous version"):
        rollback(registry, "sup", actor="t")
    assert registry.resolve("sup", "production").version == 1
    actions = [e.action for e in registry.history("sup", "production")]
    assert actions == ["promote", "promote", "promote", "rollback", "rollback"]


def test_rollback_target_replays_history_as_a_stack() -> None:
    from datetime import UTC, datetime

    from llmeco.registry import AliasEvent

    def ev(to: int, action: str = "promote") -> AliasEvent:
        return AliasEvent(0, "m", "production", None, to, action, "t", datetime.now(UTC))

    assert rollback_target([ev(1), ev(2), ev(1)]) == (1, 2)
    assert rollback_target([ev(1), ev(2), ev(3), ev(2, "rollback")]) == (2, 1)
    assert rollback_target([ev(1)]) == (1, None)
