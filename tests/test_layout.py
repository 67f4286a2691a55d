"""The layout of docs/architecture.md holds: packages by layer, nothing loose at the root,
no module too long to read, and the README's map names every package."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "keepa_deals"
ROOT_MODULES = {"__init__.py", "__main__.py", "config.py", "errors.py"}
LONGEST_MODULE_LINES = 400


def test_only_config_and_errors_sit_at_the_package_root() -> None:
    loose = {path.name for path in PACKAGE.glob("*.py")} - ROOT_MODULES
    assert loose == set(), "put each module in the package of its layer"


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text("utf-8").splitlines())) > LONGEST_MODULE_LINES
    }
    assert long == {}


def test_the_readme_map_names_every_package() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    section = readme.split("## What is here", 1)[1].split("\n## ", 1)[0]
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    missing = {
        name
        for name in packages
        if f"`{name}/`" not in section and f"keepa_deals/{name}/" not in section
    }
    assert missing == set()
    assert "docs/architecture.md" in section
