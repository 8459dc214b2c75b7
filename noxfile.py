"""Development sessions: ``nox`` runs lint, typecheck and tests; ``nox -s docs`` builds
the site, ``nox -s site`` tests the built site in headless Chromium, and ``nox -s bench``
runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check on the whole tree."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on fsmflow, examples and tests (configured in pyproject.toml)."""
    session.install("-e", ".[test,typecheck]")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """pytest (trio mode, hypothesis) with a 90 % coverage floor on fsmflow."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        # The built site's tests need the docs toolchain and a browser: `nox -s site`.
        "--ignore=tests/docs_site",
        "--cov=fsmflow",
        "--cov-report=term-missing:skip-covered",
        "--cov-fail-under=90",
        *session.posargs,
    )


@nox.session
def durability(session: nox.Session) -> None:
    """Durable runs under fire, on SQLite and on the PostgreSQL server (127.0.0.1:5432,
    or FSMFLOW_TEST_POSTGRES_DSN): worker processes SIGKILLed 200 times per backend
    (at random, inside steps, while starting up), SIGSTOPped past their lease, racing
    over 1,000 runs (tests marked durability)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "durability", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The long kill and stress tests (marked slow): a few minutes."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Fetch the pinned Mermaid the site ships (npm), regenerate the diagrams from the
    examples, then build the site with --strict."""
    session.install("-e", ".[docs]")
    session.run("python", "tools/docs_mermaid.py")
    session.run("python", "-m", "fsmflow.diagrams._docs", "docs/diagrams")
    session.run("mkdocs", "build", "--strict")


@nox.session
def site(session: nox.Session) -> None:
    """Build the site and load every page in headless Chromium (Debian's ``chromium``)
    with the network off: every diagram must render, every label read as written."""
    session.install("-e", ".[docs,test]")
    session.run("python", "tools/docs_mermaid.py")
    session.run("pytest", "tests/docs_site", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ side by side with its peers."""
    session.install("-e", ".[bench]")
    for script in sorted(__import__("pathlib").Path("bench").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
