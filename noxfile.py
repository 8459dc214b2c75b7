"""Development sessions: ``nox`` runs lint, typecheck and tests; ``nox -s docs`` and
``nox -s bench`` build the site and run the benchmarks."""

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
        "--cov=fsmflow",
        "--cov-report=term-missing:skip-covered",
        "--cov-fail-under=90",
        *session.posargs,
    )


@nox.session
def slow(session: nox.Session) -> None:
    """The long kill and stress tests (marked slow): a few minutes."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate the diagrams from the examples, then build the site with --strict."""
    session.install("-e", ".[docs]")
    session.run("python", "-m", "fsmflow.diagrams._docs", "docs/diagrams")
    session.run("mkdocs", "build", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ side by side with its peers."""
    session.install("-e", ".[bench]")
    for script in sorted(__import__("pathlib").Path("bench").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
