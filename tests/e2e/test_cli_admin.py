"""The real ``vidgate`` CLI in subprocesses: groups, accounts, credits and keys on one database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support import free_port
from vidgate.billing.model import LedgerEntry
from vidgate.errors import Unauthorized
from vidgate.services import open_services
from vidgate.settings import Settings
from vidgate.store import ledger_rows

DAY = 24 * 3600


class Cli:
    """Runs ``python -m vidgate`` (``command``) on one data dir, with only that VIDGATE_* set."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
        self.env["VIDGATE_DATA_DIR"] = str(data_dir)
        self.command = [sys.executable, "-m", "vidgate"]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str) -> Any:
        """Run with ``--json`` (placed before any ``--``) and parse what it prints."""
        split = args.index("--") if "--" in args else len(args)
        done = self.run(*args[:split], "--json", *args[split:])
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def assert_one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


async def _key_works(data_dir: Path, key: str) -> bool:
    services = await open_services(Settings(data_dir=data_dir, workers=0))
    try:
        await services.accounts.authenticate(f"Bearer {key}")
    except Unauthorized:
        return False
    finally:
        await services.close()
    return True


async def _ledger(data_dir: Path, account_id: str) -> list[LedgerEntry]:
    services = await open_services(Settings(data_dir=data_dir, workers=0))
    try:
        async with services.db.read() as conn:
            return await ledger_rows.list_entries(conn, account_id, before_id=None, limit=100)
    finally:
        await services.close()


def test_cli_manages_groups_accounts_credits_and_keys_end_to_end(cli: Cli) -> None:
    group = cli.json("groups", "set", "vip", "--ratio", "0.8", "--max-active", "3")
    assert group == {
        "name": "vip",
        "price_ratio": "0.8",
        "rate_limit_per_minute": None,
        "max_active_tasks": 3,
    }

    alice = cli.json("accounts", "create", "alice", "--credits", "100", "--group", "vip")
    assert alice["key"].startswith("sk-")
    assert alice["name"] == "alice"
    assert alice["user_group"] == "vip"
    assert alice["balance"] == 100

    listed = cli.json("accounts", "list")
    assert [(a["name"], a["balance"]) for a in listed] == [("alice", 100)]
    assert "key" not in listed[0]

    assert cli.json("accounts", "topup", "alice", "50")["balance"] == 150
    # Options go before "--" so that the negative amount after it is not taken for an option.
    adjusted = cli.json("accounts", "adjust", "alice", "--reason", "refund correction", "--", "-25")
    assert adjusted["balance"] == 125

    before = time.time()
    ci = cli.json("keys", "create", "alice", "--name", "ci", "--expires-days", "1")
    assert ci["key"].startswith("sk-")
    assert ci["key"] != alice["key"]
    assert ci["name"] == "ci"
    assert ci["account_id"] == alice["id"]
    assert before + DAY - 60 <= ci["expires"] <= time.time() + DAY + 60

    listing = cli.run("keys", "list", "alice", "--json")
    assert listing.returncode == 0, listing.stderr
    keys = json.loads(listing.stdout)
    assert sorted(k["name"] for k in keys) == ["ci", "default"]
    assert alice["key"] not in listing.stdout
    assert ci["key"] not in listing.stdout
    assert all(k["revoked"] is None for k in keys)

    revoked = cli.json("keys", "revoke", ci["id"])
    assert revoked["id"] == ci["id"]
    assert revoked["revoked"] is not None

    # What the commands wrote is what the server will read.
    assert asyncio.run(_key_works(cli.data_dir, alice["key"])) is True
    assert asyncio.run(_key_works(cli.data_dir, ci["key"])) is False
    entries = asyncio.run(_ledger(cli.data_dir, alice["id"]))
    assert [(e.kind, e.amount_cents, e.balance_after_cents, e.reason) for e in entries] == [
        ("adjustment", -2500, 12500, "refund correction"),
        ("topup", 5000, 15000, None),
        ("topup", 10000, 10000, "opening"),
    ]


def test_cli_errors_are_one_line_on_stderr_with_exit_status_2(cli: Cli) -> None:
    cli.json("accounts", "create", "alice", "--credits", "10")

    missing = cli.run("accounts", "topup", "nobody", "5", "--json")
    again = cli.run("accounts", "create", "alice", "--json")

    assert "nobody" in assert_one_line_error(missing)
    line = assert_one_line_error(again)
    assert "alice" in line
    assert "exists" in line
    assert [a["name"] for a in cli.json("accounts", "list")] == ["alice"]


def test_cli_without_json_prints_for_people(cli: Cli) -> None:
    created = cli.run("accounts", "create", "bob", "--credits", "12.5")
    listed = cli.run("accounts", "list")

    assert created.returncode == 0, created.stderr
    assert "bob" in created.stdout
    key_lines = [line.strip() for line in created.stdout.splitlines() if "sk-" in line]
    assert len(key_lines) == 1
    assert key_lines[0].startswith("sk-")
    assert not created.stdout.lstrip().startswith(("{", "["))
    assert listed.returncode == 0, listed.stderr
    assert "bob" in listed.stdout
    assert "12.50" in listed.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(listed.stdout)


def test_admin_commands_open_only_the_database(cli: Cli, tmp_path: Path) -> None:
    """Settings that stop `serve` at start-up in the engines, the bucket and the outbound
    client (a models file that does not parse, a bucket nobody serves, a CA file that is not
    there) do not touch an admin command: it opens the database and nothing else."""
    models = tmp_path / "models.toml"
    models.write_text("[engines.broken\n")
    cli.env.update(
        VIDGATE_MODELS=str(models),
        VIDGATE_S3_BUCKET="videos",
        VIDGATE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        VIDGATE_S3_ACCESS_KEY_ID="nobody",
        VIDGATE_S3_SECRET_ACCESS_KEY="nothing",
        VIDGATE_EGRESS_CA_BUNDLE=str(tmp_path / "missing-ca.pem"),
    )

    alice = cli.json("accounts", "create", "alice", "--credits", "5")
    topped = cli.json("accounts", "topup", "alice", "1")
    keys = cli.json("keys", "list", "alice")
    group = cli.json("groups", "set", "vip", "--ratio", "0.5")
    token = cli.json("workers", "token", "create", "--name", "gpu-1")

    assert topped["balance"] == 6
    assert [k["account_id"] for k in keys] == [alice["id"]]
    assert group["price_ratio"] == "0.5"
    assert token["token"].startswith("wk-")
    assert not (cli.data_dir / "files").exists()


def test_admin_commands_need_no_extra_but_the_database_driver(cli: Cli) -> None:
    """A bucket and a Redis are set, and neither boto3 nor coredis can be imported (as in a
    plain install): the admin commands, which use neither, still run."""
    blocked = (
        "import sys; sys.modules.update(boto3=None, coredis=None); "
        "from vidgate.cli import app; app(sys.argv[1:], prog_name='vidgate')"
    )
    cli.command = [sys.executable, "-c", blocked]
    cli.env.update(VIDGATE_S3_BUCKET="videos", VIDGATE_REDIS_URL="redis://127.0.0.1:1")

    assert cli.json("accounts", "list") == []
    assert cli.json("workers", "token", "list") == []
