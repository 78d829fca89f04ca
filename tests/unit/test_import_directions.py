"""The import table of docs/architecture.md is the rule: every import between vidgate's units
is one its row allows, and every dependency a row names is one the code has (so the table
stays a true picture, not a wish list)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src"
TABLE_HEADING = "## Which way imports point"


def allowed_imports() -> dict[str, set[str]]:
    """The table's rows: unit -> the units it may import."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        unit = cells[0].strip("`")
        assert unit not in rows, f"{unit} has two rows"
        rows[unit] = set(re.findall(r"`([^`]+)`", cells[1]))
    return rows


def unit_of(module: str, units: set[str]) -> str | None:
    """``vidgate.tasks.model`` -> ``tasks.model`` (a unit of its own), ``vidgate.tasks.service``
    -> ``tasks``; None for ``vidgate`` itself."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    if len(parts) >= 2 and f"{parts[0]}.{parts[1]}" in units:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module) -> set[str]:
    """Every vidgate module the file imports (``from vidgate.store import task_rows`` names
    ``vidgate.store.task_rows`` when that is a module, else ``vidgate.store``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "vidgate")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "vidgate":
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                as_path = SOURCE / candidate.replace(".", "/")
                is_module = as_path.with_suffix(".py").exists() or as_path.is_dir()
                found.add(candidate if is_module else node.module)
    return found


def actual_imports(units: set[str]) -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> the modules that import it."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((SOURCE / "vidgate").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = module_name(path)
        source = unit_of(name, units)
        for target in imported_modules(ast.parse(path.read_text(), str(path))):
            dependency = unit_of(target, units)
            if source is not None and dependency is not None and dependency != source:
                edges[source][dependency].append(name)
    return edges


def test_every_import_between_units_is_one_the_table_allows() -> None:
    rows = allowed_imports()
    edges = actual_imports(set(rows))
    against = [
        f"{source} imports {dependency} ({', '.join(sorted(set(modules)))})"
        for source, targets in sorted(edges.items())
        for dependency, modules in sorted(targets.items())
        if dependency not in rows.get(source, set())
    ]
    assert not against, "imports the table of docs/architecture.md does not allow:\n" + "\n".join(
        against
    )


def test_every_unit_has_a_row_and_every_row_a_dependency_the_code_has() -> None:
    rows = allowed_imports()
    edges = actual_imports(set(rows))
    units = {unit_of(module_name(p), set(rows)) for p in (SOURCE / "vidgate").rglob("*.py")}
    assert units - {None} - set(rows) == set(), "units without a row in the table"
    unused = [
        f"{unit} -> {dependency}"
        for unit, allowed in sorted(rows.items())
        for dependency in sorted(allowed)
        if dependency not in edges.get(unit, {})
    ]
    assert not unused, "dependencies the table names and the code does not have:\n" + "\n".join(
        unused
    )


def test_the_rules_the_redesign_promised() -> None:
    rows = allowed_imports()
    assert "services" not in rows["queue"]
    assert rows["client"] == set()
    for model in ("tasks.model", "auth.model", "billing.model", "webhooks.model"):
        assert "store" not in rows[model]
    # The remote worker's modules never touch the database.
    for name in ("remote", "remote_host", "worker"):
        tree = ast.parse((SOURCE / "vidgate" / "queue" / f"{name}.py").read_text())
        assert not [m for m in imported_modules(tree) if m.startswith("vidgate.store")], name
