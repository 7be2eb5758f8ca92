"""The floors of docs/architecture.md, held against the code: a module imports
only from its own floor and the floors below it.

Ground (portal's organisations, scoping, outbox, API authentication) imports
neither engine; the orders engine imports the ground only; the risks engine
imports the ground and the orders engine; the screens and the API, on top,
may import anything. Every import counts, also one inside a function.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("portal", "orders", "risks")

GROUND = "ground"
ORDERS = "orders engine"
RISKS = "risks engine"
SCREENS = "screens"

# Modules named here are on the floor given; the rest of an app is on the
# floor of its app's engine (portal's: the ground).
SCREEN_MODULES = (
    "portal.views",
    "portal.dashboard",
    "portal.demo",
    "portal.digest",
    "portal.tasks",
    "portal.urls",
    "portal.formatting",
    "portal.tables",
    "portal.templatetags",
    "portal.management",
    "orders.views",
    "orders.api",
    "orders.tables",
    "orders.filtersets",
    "orders.forms",
    "orders.stations",
    "orders.urls",
    "orders.imports",
    "orders.management",
    "risks.views",
    "risks.api",
    "risks.tables",
    "risks.filtersets",
    "risks.forms",
    "risks.findings",
    "risks.urls",
)
ENGINE_OF_APP = {"portal": GROUND, "orders": ORDERS, "risks": RISKS}
MAY_IMPORT = {
    GROUND: {GROUND},
    ORDERS: {GROUND, ORDERS},
    RISKS: {GROUND, ORDERS, RISKS},
    SCREENS: {GROUND, ORDERS, RISKS, SCREENS},
}


def floor_of(module: str) -> str:
    if any(module == name or module.startswith(name + ".") for name in SCREEN_MODULES):
        return SCREENS
    return ENGINE_OF_APP[module.split(".")[0]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(tree) -> set[str]:
    """The project modules a file imports, anywhere in it; ``from app import x``
    counts as importing ``app.x`` when ``x`` is a module."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if is_module(child) else node.module)
    return {name for name in found if name.split(".")[0] in APPS and name not in APPS}


def project_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts and path.name != "settings.py":
                yield module_name(path), path


def test_every_module_imports_only_from_its_floor_and_below():
    broken = []
    for name, path in project_modules():
        floor = floor_of(name)
        for target in sorted(imported(ast.parse(path.read_text(encoding="utf-8")))):
            if floor_of(target) not in MAY_IMPORT[floor]:
                broken.append(f"{name} ({floor}) imports {target} ({floor_of(target)})")
    assert broken == []


def test_the_check_sees_a_forbidden_import():
    tree = ast.parse("def f():\n    from risks.models import RiskCase\n")
    assert imported(tree) == {"risks.models"}
    assert floor_of("risks.models") not in MAY_IMPORT[floor_of("orders.workflow")]
    assert floor_of("orders.views.lists") == SCREENS and floor_of("portal.notify") == GROUND
    assert floor_of("portal.api") == GROUND and floor_of("portal.formatting") == SCREENS
