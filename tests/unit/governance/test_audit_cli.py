"""``llmeco audit``: verify, checkpoint export, prove / verify --proof, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from llmeco.cli.main import app
from llmeco.governance.audit import AuditLedger
from llmeco.settings import Settings

runner = CliRunner()


def populate(home: Path, n: int) -> None:
    with AuditLedger.open(Settings(home=home)) as ledger:
        for f in [ledger.record_admin("cli", "alias.move", {"i": i}) for i in range(n)]:
            f.result(10)


def run(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", *args], env={"LLMECO_HOME": str(home)})
    return result.exit_code, result.output


def test_verify_checkpoint_prove_and_tamper(tmp_path: Path) -> None:
    home = tmp_path / "home"
    populate(home, 12)
    anchor = tmp_path / "anchor.json"
    code, out = run(home, "checkpoint", "--now", "--export", str(anchor))
    assert code == 0, out
    assert json.loads(anchor.read_text())["size"] == 12 == json.loads(out)["size"]
    code, out = run(home, "verify", "--checkpoint", str(anchor))
    assert code == 0 and "12 entries" in out and "intact" in out, out

    proof = tmp_path / "proof.json"
    code, out = run(home, "prove", "5", "--checkpoint", str(anchor), "--out", str(proof))
    assert code == 0 and json.loads(out)["seq"] == 5
    code, out = run(home, "verify", "--proof", str(proof), "--checkpoint", str(anchor))
    assert code == 0 and "proof: ok" in out, out
    forged = json.loads(proof.read_text())
    forged["entry"] = forged["entry"].replace('"i":4', '"i":40')
    proof.write_text(json.dumps(forged))
    code, out = run(home, "verify", "--proof", str(proof), "--no-chain")
    assert code == 1 and "proof: FAILED" in out, out

    code, out = run(home, "consistency", "5")
    assert code == 0 and json.loads(out)["new_size"] == 12

    code, out = run(home, "show", "3")
    assert code == 0 and json.loads(out)["payload"]["details"] == {"i": 2}
    code, out = run(home, "tail", "-n", "3")
    assert code == 0 and "alias.move" in out

    engine = sa.create_engine(f"sqlite:///{home / 'llmeco.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_entries SET key_id = 'someone-else' WHERE seq = 4"))
    engine.dispose()
    code, out = run(home, "verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["first_bad_seq"] == 4
    code, out = run(home, "verify")
    assert code == 1 and "TAMPERED" in out and "first bad entry: 4" in out


def test_empty_ledger_and_missing_files(tmp_path: Path) -> None:
    code, out = run(tmp_path, "verify")
    assert code == 0 and "0 entries" in out
    code, out = run(tmp_path, "checkpoint")
    assert code == 2 and "no checkpoint" in out
    code, out = run(tmp_path, "verify", "--checkpoint", str(tmp_path / "nope.json"))
    assert code == 2 and "does not" in out and "nope.json" in out


def test_rotate_keys_and_new_key(tmp_path: Path) -> None:
    code, key = run(tmp_path, "new-encryption-key")
    assert code == 0 and len(key.strip()) == 44
    code, out = run(tmp_path, "rotate-keys")
    assert code == 0 and "re-encrypted 0 values" in out
