"""The project's shape: every path is served by one route, every OpenAPI operation has an id of
its own, and the apps import each other in one direction only, without cycles."""

import ast
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, path
from django.urls.resolvers import RegexPattern, RoutePattern
from drf_spectacular.generators import SchemaGenerator

ROOT = Path(settings.BASE_DIR)
# The apps from the top down: each may import only the apps below it. A voice belongs to an
# account, so voices may import accounts; accounts never know about voices.
LAYERS = ["csmsite", "web", "api", "ingest", "speech", "voices", "accounts", "core"]
# Values tried for a converter's placeholder, in turn: the first its regex takes is the sample.
SAMPLE_VALUES = ["sample", "7", str(uuid.UUID(int=7)), "sample/nested"]

Route = tuple[URLPattern | URLResolver, ...]


# --- Routes ---------------------------------------------------------------------------------------


def routes(patterns: list, above: Route = ()) -> Iterator[Route]:
    """Every endpoint with the includes above it, from the outermost include down."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, (*above, pattern))
        else:
            yield (*above, pattern)


def is_djangos_admin(route: Route) -> bool:
    return any(getattr(part, "namespace", None) == "admin" for part in route)


def sample_path(route: Route) -> str:
    """A concrete path the route serves: each placeholder replaced by a value it takes."""
    pieces = []
    for part in route:
        pattern = part.pattern
        assert isinstance(pattern, RoutePattern), f"no sample for the regex route {pattern}"

        def sample(placeholder: re.Match, converters=pattern.converters) -> str:
            regex = converters[placeholder["name"]].regex
            return next(value for value in SAMPLE_VALUES if re.fullmatch(regex, value))

        pieces.append(re.sub(r"<(?:\w+:)?(?P<name>\w+)>", sample, str(pattern)))
    return "".join(pieces)


def serves(route: Route, url: str) -> bool:
    """Whether resolving `url` (a path without its leading slash) through the route's includes
    ends in its endpoint."""
    rest = url
    for part in route:
        match = part.pattern.match(rest)
        if match is None:
            return False
        rest = match[0]
    return True


def paths_served_twice(resolver: URLResolver) -> dict[str, list[str]]:
    """Each sample path that more than one route serves, with those routes."""
    every_route = list(routes(resolver.url_patterns))
    twice = {}
    for route in every_route:
        if is_djangos_admin(route):
            continue
        sample = sample_path(route)
        serving = [describe(other) for other in every_route if serves(other, sample)]
        assert serving, f"no route serves the sample {sample!r} of {describe(route)}"
        if len(serving) > 1:
            twice[sample] = serving
    return twice


def describe(route: Route) -> str:
    return "".join(str(part.pattern) for part in route) + f" ({route[-1].name})"


def view(request: object) -> None:
    raise AssertionError("never called: the route check only matches paths")


def test_no_two_url_patterns_serve_the_same_path():
    resolver = get_resolver()

    assert paths_served_twice(resolver) == {}
    # Both mounts of the API are walked (they are distinct paths).
    samples = {
        sample_path(route) for route in routes(resolver.url_patterns) if not is_djangos_admin(route)
    }
    assert {"v1/audio/voices", "api/v1/audio/voices"} <= samples
    assert "v1/audio/voices/sample" in samples


def test_the_route_check_finds_a_path_served_twice():
    # given an API that declares one path twice, and one that a placeholder route swallows
    api = [
        path("audio/voices", view, name="first"),
        path("audio/voices", view, name="second"),
        path("jobs/<str:job_id>", view, name="job"),
        path("jobs/latest", view, name="latest"),
        path("keys/<int:key_id>", view, name="key"),
    ]
    resolver = URLResolver(RegexPattern(r"^/"), [path("v1/", (api, None, None))])

    # then both are found, and nothing else
    assert paths_served_twice(resolver) == {
        "v1/audio/voices": ["v1/audio/voices (first)", "v1/audio/voices (second)"],
        "v1/jobs/latest": ["v1/jobs/<str:job_id> (job)", "v1/jobs/latest (latest)"],
    }


# --- The OpenAPI schema ---------------------------------------------------------------------------


def test_openapi_operation_ids_are_unique():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    ids = {}
    for route, methods in schema["paths"].items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                ids.setdefault(operation["operationId"], []).append(f"{method.upper()} {route}")
    assert ids
    assert {name: where for name, where in ids.items() if len(where) > 1} == {}
    # listVoices names the voice list that is served; the unreachable second view of the same
    # path, which declared the same id, is gone.
    assert ids["listVoices"] == ["GET /v1/audio/voices"]


# --- Imports --------------------------------------------------------------------------------------


def project_modules() -> dict[str, Path]:
    """Every module of the apps, by dotted name (a package by its own name)."""
    modules = {}
    for app in LAYERS:
        for file in (ROOT / app).rglob("*.py"):
            parts = list(file.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = file
    return modules


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The imports under `if TYPE_CHECKING:` (never run, so never part of a cycle)."""
    guarded: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                guarded.update(ast.walk(statement))
    return guarded


def imports(modules: dict[str, Path], *, at_run_time: bool) -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in it (functions included)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(file.read_text(), filename=str(file))
        skipped = _type_checking_only(tree) if at_run_time else set()
        targets: set[str | None] = set()
        for node in ast.walk(tree):
            if node in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    # `from package import module` imports the module, else a name of `base`
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else known(base))
        graph[name] = {target for target in targets if target and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                lowest[module] = min(lowest[module], lowest[target])
            elif target in on_stack:
                lowest[module] = min(lowest[module], index[target])
        if lowest[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_between_modules():
    assert cycles(imports(project_modules(), at_run_time=True)) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a.x": {"a.y"}, "a.y": {"b.z"}, "b.z": {"a.x"}, "c": {"a.x"}}

    assert cycles(graph) == [["a.x", "a.y", "b.z"]]


def test_apps_import_only_the_apps_below_them():
    upward = defaultdict(list)
    for module, targets in imports(project_modules(), at_run_time=False).items():
        app = module.partition(".")[0]
        for target in targets:
            target_app = target.partition(".")[0]
            if LAYERS.index(target_app) < LAYERS.index(app):
                upward[f"{app} -> {target_app}"].append(f"{module} -> {target}")

    assert dict(upward) == {}
