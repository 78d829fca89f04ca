"""A plain install (no vidgate[s3], no vidgate[postgres]) whose settings need one: `vidgate serve`
and the admin commands say so in one error line and exit 2 at start-up, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import free_port

# The server as a plain install runs it: boto3 cannot be imported (None in sys.modules makes
# every `import boto3` raise ImportError), whatever this test environment has installed.
WITHOUT_BOTO3 = (
    "import sys; sys.modules['boto3'] = None; from vidgate.cli import main; "
    "sys.argv = ['vidgate', *sys.argv[1:]]; main()"
)


def test_a_bucket_without_the_s3_extra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    env.update(VIDGATE_DATA_DIR=str(tmp_path / "data"), VIDGATE_S3_BUCKET="videos")

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_BOTO3, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: VIDGATE_S3_BUCKET needs boto3, which is not installed: pip install "
        "'vidgate[s3]' (in a checkout: .venv/bin/pip install -e '.[s3]')"
    ], done.stderr


def test_an_admin_command_on_postgres_without_the_extra_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    env.update(
        VIDGATE_DATA_DIR=str(tmp_path / "data"),
        # Port 1: never reached, the check comes before any connection.
        VIDGATE_DATABASE_URL="postgresql+asyncpg://vidgate@127.0.0.1:1/vidgate",
    )
    without_asyncpg = WITHOUT_BOTO3.replace("'boto3'", "'asyncpg'")

    done = subprocess.run(
        [sys.executable, "-c", without_asyncpg, "accounts", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: VIDGATE_DATABASE_URL=postgresql+asyncpg://... needs asyncpg, which is not "
        "installed: pip install 'vidgate[postgres]' (in a checkout: .venv/bin/pip install -e "
        "'.[postgres]')"
    ]
