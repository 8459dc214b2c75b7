"""The document-pipeline example produces the report its processors imply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from examples.document_pipeline import Document, main
from fsmflow.dag import NodeState


async def test_pipeline_enriches_and_reports() -> None:
    result = await main()
    assert result.succeeded
    assert isinstance(result.payload, Document)
    assert result.payload.tags == ("positive", "has-links", "needs-proofreading")
    assert len(result.payload.sentences) == 4
    assert result.outcomes["report"].result == (
        "4 sentences; tags: positive, has-links, needs-proofreading"
    )
    assert all(o.state is NodeState.DONE for o in result.outcomes.values())


def test_pipeline_runs_as_a_script() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "document_pipeline.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "report: 4 sentences" in done.stdout
