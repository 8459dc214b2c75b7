"""Fixtures for tests of the built docs site in headless Chromium.

The site is built fresh (``mkdocs build --strict`` into a temporary directory) unless
``FSMFLOW_SITE_DIR`` names a built one, served from 127.0.0.1 by a thread, and loaded in
Debian's ``chromium`` with the network off. Locally a missing ``mkdocs``, Mermaid cache or
browser skips these tests with the command that fixes it; under ``CI=true`` it fails them.
Run them with ``python3 -m nox -s site``.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .chromium import Browser, find_chromium, launch

ROOT = Path(__file__).resolve().parent.parent.parent


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI, where everything the tests need is installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site: ``FSMFLOW_SITE_DIR``, or a fresh ``mkdocs build --strict``."""
    given = os.environ.get("FSMFLOW_SITE_DIR")
    if given:
        site = Path(given).resolve()
        if not (site / "index.html").is_file():
            unavailable(f"FSMFLOW_SITE_DIR={given} holds no built site")
        return site
    if importlib.util.find_spec("mkdocs") is None:
        unavailable("mkdocs is not installed; run `python3 -m nox -s site`")
    site = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0 and "tools/docs_mermaid.py" in built.stderr:
        unavailable(f"the site's Mermaid is not fetched: {built.stderr.strip()[-400:]}")
    assert built.returncode == 0, built.stderr
    return site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site_url(site_dir: Path) -> Iterator[str]:
    """The site served over HTTP from 127.0.0.1 (as a docs host would serve it)."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium (fresh profile, network off) for the whole session."""
    executable = find_chromium()
    if executable is None:
        unavailable("chromium is not installed (Debian: `apt-get install chromium`)")
    with launch(executable) as running:
        yield running
