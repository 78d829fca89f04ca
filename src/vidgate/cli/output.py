"""What the client commands print: the stdout and stderr consoles, JSON, and task tables."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from vidgate.client import Task

# No markup: ids, paths and server messages are printed as they are.
console = Console(markup=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def task_data(task: Task) -> dict[str, Any]:
    """The task as the server sent it (no fields the server left out)."""
    data: dict[str, Any] = task.model_dump(mode="json", exclude_unset=True)
    return data


def print_table(table: Table) -> None:
    # Piped into a file or a pager: whole rows, not rows cut to fit 80 columns.
    (console if console.is_terminal else Console(width=200, markup=False)).print(table)


def error_text(task: Task) -> str:
    if task.error is None:
        return "unknown_error"
    return f"{task.error.code}: {task.error.message}"


def time_text(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def task_table(task: Task) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("id", task.id)
    table.add_row("model", task.model)
    table.add_row("status", task.status)
    table.add_row("progress", f"{task.progress}%")
    table.add_row("created", time_text(task.created))
    if task.queue_position is not None:
        table.add_row("queue position", str(task.queue_position))
    estimated = task.task_info.estimated_time if task.task_info else None
    if estimated is not None:
        table.add_row("estimated time", f"{estimated} s")
    if task.error is not None:
        table.add_row("error", error_text(task))
    for url in task.results or []:
        table.add_row("result", url)
    return table
