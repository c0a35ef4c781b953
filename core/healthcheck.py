"""`python -m core.healthcheck [URL]`: the container's health check (see the Dockerfile).

Exits 0 when GET URL (default http://127.0.0.1:8000/healthz) answers 200 within the timeout,
1 otherwise. It sends a Host header the server accepts, the first name in ALLOWED_HOSTS,
because Django refuses (400) a Host it does not serve, and a production server's list need
not contain 127.0.0.1. Deliberately does not import Django: it runs every half minute.
"""

import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"
TIMEOUT_SECONDS = 5


def host_header(allowed_hosts: str) -> str | None:
    """The first concrete name in ALLOWED_HOSTS; None (the URL's own host) for none or `*`."""
    for raw in allowed_hosts.split(","):
        name = raw.strip()
        if name.startswith("."):
            # ".example.com" allows example.com and every subdomain.
            name = name[1:]
        if name and "*" not in name:
            return name
    return None


def check(url: str = DEFAULT_URL, *, allowed_hosts: str | None = None) -> bool:
    if allowed_hosts is None:
        allowed_hosts = os.environ.get("ALLOWED_HOSTS", "")
    request = urllib.request.Request(url)  # noqa: S310 - a fixed http URL of our own
    host = host_header(allowed_hosts)
    if host:
        port = urllib.parse.urlsplit(url).port
        request.add_header("Host", f"{host}:{port}" if port else host)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str]) -> int:
    return 0 if check(argv[1] if len(argv) > 1 else DEFAULT_URL) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
