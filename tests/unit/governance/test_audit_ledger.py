"""The audit ledger: group commit, checkpoints, and every kind of tampering caught."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmeco.errors import EngineDead, InvalidRequest
from llmeco.governance.audit import AuditLedger, RequestRecord, chain_hash, latest_checkpoint
from llmeco.governance.audit import ledger as audit_mod
from llmeco.governance.audit import tables as t
from llmeco.governance.audit.checkpoint import Checkpoint, canonical_json
from llmeco.governance.audit.merkle import Frontier, leaf_hash
from llmeco.governance.audit.verify import (
    make_consistency_proof,
    make_inclusion_proof,
    read_entry,
    verify_ledger,
    verify_proof,
)
from llmeco.governance.crypto import Cipher, rotate
from llmeco.settings import Settings
from llmeco.store import Store


def settings_for(home: Path, **kw: object) -> Settings:
    return Settings(home=home, audit_checkpoint_entries=10, **kw)  # type: ignore[arg-type]


def fill(ledger: AuditLedger, n: int) -> None:
    futures = [ledger.record_admin("admin-key", "key.create", {"n": i}) for i in range(n)]
    for f in futures:
        f.result(10)


def request_record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{i}",
        method="POST",
        path="/v1/chat/completions",
        route="/v1/chat/completions",
        status=200,
        latency_ms=1.5,
        request_sha256="0" * 64,
        response_sha256="1" * 64,
        request_bytes=10,
        response_bytes=20,
        started="2026-01-01T00:00:00.000000Z",
        key_id="k1",
        model="m",
        prompt_tokens=3,
        completion_tokens=4,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[AuditLedger]:
    with AuditLedger.open(settings_for(tmp_path)) as ledger:
        yield ledger


def check(ledger: AuditLedger, *anchors: Checkpoint) -> dict[str, object]:
    return verify_ledger(ledger.store, ledger.signer.public_key, anchors).to_dict()


def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def rewrite_chain(store: Store) -> None:
    """What a careful attacker does after editing: recompute every hash and the head."""
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(t.entries).order_by(t.entries.c.seq)).all()
        prev, frontier = t.GENESIS_HASH, Frontier()
        for row in rows:
            h = chain_hash(prev, row.payload.encode())
            leaf = leaf_hash(row.payload.encode())
            frontier.append(leaf)
            conn.execute(
                sa.update(t.entries)
                .where(t.entries.c.seq == row.seq)
                .values(prev_hash=prev, entry_hash=h, leaf_hash=leaf.hex())
            )
            prev = h
        conn.execute(
            sa.update(t.head).values(
                seq=rows[-1].seq, entry_hash=prev, frontier=json.dumps(frontier.to_hex())
            )
        )


def test_entries_chain_checkpoint_and_verify(ledger: AuditLedger) -> None:
    seqs = [ledger.record_request(request_record(i)).result(10) for i in range(3)]
    fill(ledger, 22)
    assert seqs == [1, 2, 3]
    report = check(ledger)
    assert report["ok"] and report["entries"] == 25
    with ledger.store.session() as s:
        sizes = s.scalars(sa.select(t.checkpoints.c.size)).all()
        first = s.execute(sa.select(t.entries).where(t.entries.c.seq == 1)).one()
    assert all(b - a >= 10 for a, b in itertools.pairwise(sizes))
    payload = json.loads(first.payload)
    assert payload["request_id"] == "req-0" and payload["kind"] == "request"
    assert first.payload == canonical_json(payload).decode()  # canonical: sorted, no spaces
    assert first.prev_hash == "0" * 64
    assert first.entry_hash == chain_hash(first.prev_hash, first.payload.encode())
    cp = ledger.checkpoint_now()
    assert cp is not None and cp.size == 25 and cp.signature_ok(ledger.signer.public_key)


def test_group_commit_shares_transactions(ledger: AuditLedger) -> None:
    ledger.start()
    futures = [ledger.record_request(request_record(i)) for i in range(500)]
    assert sorted(f.result(30) for f in futures) == list(range(1, 501))
    assert ledger.commits < 100  # many entries per commit
    assert check(ledger)["ok"]


def test_time_based_checkpoint(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, audit_checkpoint_entries=1000, audit_checkpoint_seconds=0.3)
    with AuditLedger.open(settings) as ledger:
        fill(ledger, 1)  # the first commit checkpoints at once (no checkpoint yet)
        cp = latest_checkpoint(ledger.store)
        assert cp is not None and cp.size == 1
        # a loaded machine may checkpoint these on commit; the idle timer must cover both
        fill(ledger, 2)
        deadline = time.monotonic() + 5
        while (cp := latest_checkpoint(ledger.store)) and cp.size < 3:
            assert time.monotonic() < deadline, "no time-based checkpoint"
            time.sleep(0.05)


def test_edit_a_field_is_caught(ledger: AuditLedger) -> None:
    fill(ledger, 15)
    sql(ledger.store, "UPDATE audit_entries SET status = 500, route = 'x' WHERE seq = 7")
    report = check(ledger)
    assert not report["ok"] and report["first_bad_seq"] == 7
    assert "disagrees with its hashed payload" in report["problems"][0]["message"]


def test_edit_a_payload_is_caught(ledger: AuditLedger) -> None:
    fill(ledger, 15)
    with ledger.store.session() as s:
        text = s.scalar(sa.select(t.entries.c.payload).where(t.entries.c.seq == 9))
    sql(
        ledger.store,
        "UPDATE audit_entries SET payload = :p WHERE seq = 9",
        p=text.replace('"n":8', '"n":800'),
    )
    report = check(ledger)
    assert report["first_bad_seq"] == 9
    assert any("edited" in p["message"] for p in report["problems"])  # type: ignore[attr-defined]


def test_rewritten_history_is_caught_by_signed_checkpoints(ledger: AuditLedger) -> None:
    fill(ledger, 25)
    exported = ledger.checkpoint_now()
    assert exported is not None
    with ledger.store.session() as s:
        text = s.scalar(sa.select(t.entries.c.payload).where(t.entries.c.seq == 3))
    sql(
        ledger.store,
        "UPDATE audit_entries SET payload = :p, route = 'key.revoke' WHERE seq = 3",
        p=text.replace("key.create", "key.revoke"),
    )
    rewrite_chain(ledger.store)  # every hash recomputed: the chain alone looks fine now
    report = check(ledger)
    assert not report["ok"]
    assert all("rewritten" in p["message"] for p in report["problems"])  # type: ignore[attr-defined]
    # Even with the stored checkpoints gone, the exported one still catches it.
    sql(ledger.store, "DELETE FROM audit_checkpoints")
    assert check(ledger)["ok"]
    report = check(ledger, exported)
    assert not report["ok"] and "exported checkpoint" in str(report["problems"])


def test_deleting_an_entry_is_caught(ledger: AuditLedger) -> None:
    fill(ledger, 15)
    sql(ledger.store, "DELETE FROM audit_entries WHERE seq = 5")
    report = check(ledger)
    assert report["first_bad_seq"] == 5
    assert "entry 5 missing" in report["problems"][0]["message"]  # type: ignore[index]


def test_swapping_two_entries_is_caught(ledger: AuditLedger) -> None:
    fill(ledger, 15)
    cols = [
        "ts",
        "kind",
        "request_id",
        "key_id",
        "route",
        "status",
        "payload",
        "prev_hash",
        "entry_hash",
        "leaf_hash",
    ]
    with ledger.store.engine.begin() as conn:
        a, b = (
            conn.execute(sa.select(t.entries).where(t.entries.c.seq == s)).one() for s in (3, 4)
        )
        for target, source in ((3, b), (4, a)):
            conn.execute(
                sa.update(t.entries)
                .where(t.entries.c.seq == target)
                .values({c: getattr(source, c) for c in cols})
            )
    report = check(ledger)
    assert report["first_bad_seq"] == 3
    assert "holds the payload of entry 4" in report["problems"][0]["message"]  # type: ignore[index]


def test_truncating_the_tail_is_caught_against_an_exported_checkpoint(
    ledger: AuditLedger, tmp_path: Path
) -> None:
    fill(ledger, 20)
    cp = ledger.checkpoint_now()
    assert cp is not None and cp.size == 20
    exported = tmp_path / "anchor.json"
    exported.write_text(json.dumps(cp.to_dict()))
    anchor = Checkpoint.from_dict(json.loads(exported.read_text()))
    # A naive cut leaves the head pointing past the end.
    sql(ledger.store, "DELETE FROM audit_entries WHERE seq > 15")
    assert check(ledger)["first_bad_seq"] == 16
    # A careful one also fixes the head and drops the checkpoints that mention the tail…
    rewrite_chain(ledger.store)
    sql(ledger.store, "DELETE FROM audit_checkpoints WHERE size > 15")
    assert check(ledger)["ok"]
    # …but the checkpoint exported earlier still says 20.
    report = check(ledger, anchor)
    assert report["first_bad_seq"] == 16
    assert "entries 16..20 were removed" in str(report["problems"])


def test_inclusion_and_consistency_proofs(ledger: AuditLedger) -> None:
    fill(ledger, 13)
    old = ledger.checkpoint_now()
    fill(ledger, 10)
    new = ledger.checkpoint_now()
    assert old is not None and new is not None and (old.size, new.size) == (13, 23)
    key = ledger.signer.public_key
    for seq in (1, 7, 13, 23):
        proof = make_inclusion_proof(ledger.store, seq)
        ok, reason = verify_proof(json.loads(json.dumps(proof)), key)
        assert ok, reason
    proof = make_inclusion_proof(ledger.store, 7, old)  # against the older, exported one
    assert verify_proof(proof, key, old)[0]
    assert not verify_proof(proof, key, new)[0]  # sizes differ
    # Forgeries: another entry's text, a changed path, a re-signed checkpoint with another key.
    forged = dict(proof, entry=proof["entry"].replace('"n":6', '"n":60'))
    assert verify_proof(forged, key)[0] is False
    path = list(proof["audit_path"])
    path[0] = "ab" * 32
    assert verify_proof(dict(proof, audit_path=path), key)[0] is False
    other_key = "00" * 32
    assert verify_proof(proof, other_key)[0] is False
    with pytest.raises(InvalidRequest):
        verify_proof({"type": "inclusion"}, key)
    consistency = make_consistency_proof(ledger.store, old.size)
    assert verify_proof(consistency, key, old) == (
        True,
        "the first 13 entries are unchanged in the 23-entry tree",
    )
    bad = dict(consistency, old_root="cd" * 32)
    assert not verify_proof(bad, key)[0]


def test_bodies_are_redacted_encrypted_and_rotated(tmp_path: Path) -> None:
    k1 = Cipher  # keep the name short below
    first_key = "A" * 43 + "="  # base64 of 32 bytes
    settings = settings_for(tmp_path, audit_store_bodies=True, encryption_keys=first_key)
    with AuditLedger.open(settings) as ledger:
        record = request_record(1)
        record.request_body = b'{"content": "card 4111 1111 1111 1111, mail a@b.example"}'
        record.response_body = b"ok"
        seq = ledger.record_request(record).result(10)
        raw = (
            ledger.store.engine.connect()
            .execute(sa.select(t.entries.c.request_body).where(t.entries.c.seq == seq))
            .scalar_one()
        )
        assert b"4111" not in raw and b"[CARD]" not in raw  # sealed
        entry = read_entry(ledger.store, seq, k1.from_settings(settings))
        assert entry["request_body"] == '{"content": "card [CARD], mail [EMAIL]"}'
        assert entry["response_body"] == "ok"
        new_key = "B" * 43 + "="
        rotated = settings_for(
            tmp_path, audit_store_bodies=True, encryption_keys=f"{new_key},{first_key}"
        )
        assert rotate(ledger.store, Cipher.from_settings(rotated)) == 2
        only_new = settings_for(tmp_path, encryption_keys=new_key)
        assert (
            read_entry(ledger.store, seq, Cipher.from_settings(only_new))["response_body"] == "ok"
        )
        assert check(ledger)["ok"]  # bodies are outside the hashed payload


def test_admin_details_must_be_json(ledger: AuditLedger) -> None:
    with pytest.raises(InvalidRequest):
        ledger.record_admin("k", "x", {"bad": object()})


def test_unavailable_store_fails_the_futures(
    ledger: AuditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_mod, "RETRY_DELAYS", (0.01,))
    fill(ledger, 1)
    sql(ledger.store, "DROP TABLE audit_entries")
    with pytest.raises(EngineDead, match="cannot commit"):
        ledger.record_admin("k", "x").result(10)


def run_writers(make: callable, per_writer: int, writers: int = 2) -> None:  # type: ignore[valid-type]
    ledgers = [make() for _ in range(writers)]
    threads = [threading.Thread(target=fill, args=(lg, per_writer)) for lg in ledgers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for lg in ledgers:
        lg.close()
        lg.store.close()


def test_two_writers_on_one_sqlite_file_share_one_chain(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    run_writers(lambda: AuditLedger.open(settings, Store.from_settings(settings)), 150)
    with AuditLedger.open(settings) as ledger:
        report = check(ledger)
    assert report["ok"] and report["entries"] == 300


@pytest.mark.slow
def test_two_writers_on_postgres_share_one_chain(tmp_path: Path, postgres_url: str) -> None:
    settings = settings_for(tmp_path, database_url=postgres_url)
    run_writers(lambda: AuditLedger.open(settings, Store.from_settings(settings)), 150)
    with AuditLedger.open(settings) as ledger:
        report = check(ledger)
        sql(ledger.store, "UPDATE audit_entries SET status = 404 WHERE seq = 42")
        assert check(ledger)["first_bad_seq"] == 42
    assert report["ok"] and report["entries"] == 300


def test_flush_waits_for_everything_recorded(ledger: AuditLedger) -> None:
    futures = [ledger.record_admin("k", "x", {"i": i}) for i in range(50)]
    ledger.flush()
    assert all(f.done() for f in futures)
    ledger.flush()  # nothing pending: returns at once


async def test_a_waiter_that_gives_up_keeps_its_entry_and_the_writer(ledger: AuditLedger) -> None:
    """A client that disconnects cancels its wait; the entry is still written."""
    import asyncio

    for i in range(20):
        thread_side = asyncio.wrap_future(ledger.record_request(request_record(i)))
        loop_side = asyncio.ensure_future(ledger.arecord_request(request_record(100 + i)))
        await asyncio.sleep(0)
        thread_side.cancel()
        loop_side.cancel()
    assert await ledger.arecord_admin("k", "after") == 41
    assert check(ledger)["ok"]


def test_flushes_from_many_threads(ledger: AuditLedger) -> None:
    def work() -> None:
        for i in range(30):
            ledger.record_admin("k", "x", {"i": i})
            ledger.flush()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert ledger._thread is not None and ledger._thread.is_alive()
    assert check(ledger)["entries"] == 120
