"""The engine layer knows no database, storage or app above it.

Every import statement under speech/engines is read (those inside functions too), and so is
every project module they lead to: a lookup cannot creep back in directly or through a helper.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import speech.engines

ENGINES_DIR = Path(speech.engines.__file__).parent
PROJECT_ROOT = ENGINES_DIR.parent.parent
# Django's database and file storage, and the apps that store voices or serve HTTP: voice
# references reach engines through the provider the registry hands them instead.
FORBIDDEN = ("django.db", "django.core.files", "voices", "ingest", "api", "web", "accounts")


def engine_modules() -> list[Path]:
    return sorted(ENGINES_DIR.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.AST, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module an import statement in `tree` may name; `package`
    is the module's own package, against which relative imports resolve."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            # `from django import db` names django.db as surely as `import django.db`.
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def project_file(name: str) -> Path | None:
    """The project's source of module `name`, if it is one of ours."""
    path = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def forbidden(name: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in FORBIDDEN)


def forbidden_imports(start: Path) -> list[str]:
    """Forbidden imports of `start` and of every project module it imports, at any depth."""
    found, seen, pending = [], set(), [start]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, imported in imported_names(tree, package):
            if forbidden(imported):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {imported}")
                continue
            # Importing a module runs its packages' __init__ first.
            parts = imported.split(".")
            for depth in range(1, len(parts) + 1):
                source = project_file(".".join(parts[:depth]))
                if source is not None:
                    pending.append(source)
    return sorted(set(found))


def test_the_walk_sees_the_whole_engine_layer():
    names = {path.relative_to(ENGINES_DIR).as_posix() for path in engine_modules()}
    assert {"base.py", "registry.py", "references.py", "csm/engine.py"} <= names


@pytest.mark.parametrize(
    "source",
    [
        "import django.db",
        "from django.db import transaction",
        "from django import db",
        "from django.core.files.storage import default_storage",
        "def f():\n    from voices.models import Voice",
        "import ingest.tasks as tasks",
        "from api.errors import ApiError",
    ],
)
def test_the_check_catches_each_kind_of_import(source):
    tree = ast.parse(source)
    assert any(forbidden(name) for _, name in imported_names(tree, "speech.engines.csm"))


def test_relative_imports_are_resolved_against_the_package():
    tree = ast.parse("from ... import references\nfrom ..base import Engine")
    names = {name for _, name in imported_names(tree, "speech.engines.csm")}
    assert {"speech.references", "speech.engines.base"} <= names


def test_the_check_follows_project_modules():
    # speech.references stores voices: an engine that imported it would reach voices through it
    helper = project_file("speech.references")
    assert helper is not None
    assert any("voices" in found for found in forbidden_imports(helper))


@pytest.mark.parametrize(
    "path", engine_modules(), ids=lambda path: path.relative_to(ENGINES_DIR).as_posix()
)
def test_an_engine_module_imports_no_database_storage_or_app_above_it(path):
    assert forbidden_imports(path) == []
