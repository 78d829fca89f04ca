"""The dashboard's ES modules as served (no browser): every import names a served module that
exports the name, and every module is loaded from the page's one script."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx

from vidgate.dashboard.pages import MODULES_DIR

ROOT = Path(__file__).resolve().parents[2]
# The modules import by name only, each from a sibling: `import { a, b as c } from "./x.js";`.
NAMED_IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([^"]+)";', re.MULTILINE)
ANY_IMPORT = re.compile(r"^\s*import\b|\bimport\s*\(", re.MULTILINE)
EXPORT = re.compile(
    r"^export (?:async )?(?:function\*?|class|const|let) ([A-Za-z_$][\w$]*)", re.MULTILINE
)
PAGE_SCRIPT = re.compile(r'<script type="module" src="dashboard/static/js/([^"]+)"></script>')


def imports(source: str) -> list[tuple[str, list[str]]]:
    """Each module ``source`` imports from, with the names it takes (as exported there)."""
    found = [
        (module, [name.split(" as ")[0].strip() for name in names.split(",") if name.strip()])
        for names, module in NAMED_IMPORT.findall(source)
    ]
    # Another form (a default, `* as`, a dynamic import) would slip past the checks below.
    assert len(ANY_IMPORT.findall(source)) == len(found), "an import of another form"
    return found


async def test_every_import_names_a_served_module_that_exports_it(
    client: httpx.AsyncClient,
) -> None:
    [entry] = PAGE_SCRIPT.findall((await client.get("/")).text)
    sources: dict[str, str] = {}
    waiting = [entry]
    while waiting:
        name = waiting.pop()
        if name in sources:
            continue
        response = await client.get(f"/dashboard/static/js/{name}", headers={"Authorization": ""})
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/javascript; charset=utf-8", name
        sources[name] = response.text
        waiting.extend(module for module, _ in imports(response.text))

    for name, source in sources.items():
        for module, wanted in imports(source):
            exported = set(EXPORT.findall(sources[module]))
            missing = set(wanted) - exported
            assert not missing, f"{name} imports {sorted(missing)} that {module} does not export"
    # Nothing left over that the page never loads.
    assert set(sources) == {path.name for path in MODULES_DIR.glob("*.js")}
    assert len(sources) >= 10


def test_an_installed_package_carries_every_dashboard_file() -> None:
    """package-data, as setuptools reads it (globs from the package folder), holds them all."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["vidgate"]
    package = ROOT / "src" / "vidgate"
    packaged = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    shipped = {path for path in (package / "dashboard" / "static").rglob("*") if path.is_file()}
    assert shipped - packaged == set()
    assert package / "dashboard" / "static" / "js" / "main.js" in packaged
