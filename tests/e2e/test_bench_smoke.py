"""The scale-out benchmarks run end to end (tiny sizes) and print the tables they promise.

No timing is asserted: only that each script runs, its Markdown parses, and it made exactly the
requests and tasks it was told to.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
POSTGRES_URL = os.environ.get("VIDGATE_TEST_POSTGRES_URL")

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def tables(output: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in the output, as rows keyed by the header's cells."""
    found: list[list[dict[str, str]]] = []
    lines = output.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("| ") and index + 1 < len(lines):
            separator = lines[index + 1]
            assert separator.startswith("|---"), f"no separator under {lines[index]!r}"
            headers = cells(lines[index])
            rows = []
            index += 2
            while index < len(lines) and lines[index].startswith("| "):
                row = cells(lines[index])
                assert len(row) == len(headers), lines[index]
                rows.append(dict(zip(headers, row, strict=True)))
                index += 1
            found.append(rows)
        else:
            index += 1
    return found


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_api_bench_drives_every_endpoint_on_both_servers() -> None:
    output = run_bench("api.py", "--connections", "1,3", "--tasks", "3", "--hold", "0.2")
    (table,) = tables(output)
    endpoints = [
        "GET /v1/tasks/{id} (pending, with its queue position)",
        "GET /v1/tasks/{id}?wait=30 (finished: answers at once)",
        "GET /v1/tasks/{id}?wait=0.2 (pending: held 0.2 s, then answered unchanged)",
        "POST /v1/videos/generations",
    ]
    assert [(row["Endpoint"], row["Connections"]) for row in table] == [
        (endpoint, connections) for connections in ("1", "3") for endpoint in endpoints
    ]
    for row in table:
        assert row["Errors (vidgate/bare)"] == "0/0"
        assert all(int(n) > 0 for n in row["Requests (vidgate/bare)"].split("/"))
        assert number(row["vidgate req/s"]) > 0
        assert number(row["Bare req/s"]) > 0
        assert number(row["vidgate p99 (ms)"]) >= number(row["vidgate p50 (ms)"])
        assert number(row["vidgate CPU (ms/req)"]) >= 0
    held = [row for row in table if "held" in row["Endpoint"]]
    # Each held poll was answered no sooner than its wait, on both servers.
    assert all(number(row["vidgate p50 (ms)"]) >= 200 for row in held)
    assert all(number(row["Bare p50 (ms)"]) >= 200 for row in held)
    assert "Aims (reported, not asserted):" in output


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_scale_bench_reads_both_databases_and_explains_the_queries(database: str) -> None:
    extra: list[str] = []
    if database == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("VIDGATE_TEST_POSTGRES_URL is not set")
        extra = ["--database-url", POSTGRES_URL]
    output = run_bench(
        "scale.py",
        "--sizes",
        "300,1200",
        "--requests",
        "16",
        "--list-requests",
        "8",
        "--accounts",
        "2",
        *extra,
    )
    http, queries = tables(output)
    assert [row["Request"] for row in http] == ["GET /v1/tasks/{id}", "GET /v1/tasks (first page)"]
    assert http[0]["Requests (small/large)"] == "16/16"
    assert http[1]["Requests (small/large)"] == "8/8"
    assert all(row["Non-2xx"] == "0/0" for row in http)
    names = [row["Store query"] for row in queries]
    assert "get_task (GET /v1/tasks/{id})" in names
    assert "unfinished_counts (/metrics)" in names
    assert "finished_counts, last 5 minutes (/metrics)" in names
    assert all(row["Plan at 1,200"] for row in queries)


def test_dispatch_bench_sees_every_task_claimed_and_finished() -> None:
    output = run_bench("dispatch.py", "--tasks", "4", "--clients", "1,2")
    measured, histogram = tables(output)
    assert [row["Clients"] for row in measured] == ["1", "2"]
    for row in measured:
        assert row["Tasks"] == "4"
        assert row["Completed"] == "4"
        assert number(row["p99"]) >= number(row["Dispatch p50 (ms)"]) > 0
    for row in histogram:
        assert sum(int(value) for key, value in row.items() if key != "Clients") == 4


def test_dispatch_bench_remote_mode_runs_or_says_why_not() -> None:
    if not POSTGRES_URL:
        pytest.skip("VIDGATE_TEST_POSTGRES_URL is not set")
    output = run_bench("dispatch.py", "--remote", "--tasks", "3", "--clients", "1")
    if "Not yet runnable" in output:
        pytest.skip("vidgate worker has no --server option yet")
    measured, _ = tables(output)
    assert measured[0]["Tasks"] == "3"
    assert measured[0]["Completed"] == "3"
