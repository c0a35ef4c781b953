"""Hooks that shape the published OpenAPI schema."""

from typing import Any


def canonical_paths_only(endpoints: list[tuple[str, Any, str, Any]], **kwargs) -> list:
    """Document the API once, under /v1; /api/v1 is the same API under the original prefix."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/")]
