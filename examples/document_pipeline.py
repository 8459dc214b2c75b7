"""A document pipeline as a reactive DAG.

``parse`` turns raw text into a document (a transform), four analyzers then run side by
side, ``enrich`` folds their findings into the document (the second transform), and
``report`` summarises it. Each processor starts the moment its last dependency settles.
Run it with ``python examples/document_pipeline.py``.
"""

from __future__ import annotations

import re

import attrs
import trio

from fsmflow.dag import (
    Dag,
    DagBuilder,
    DagResult,
    Intent,
    ProcessorInput,
    dag_to_mermaid,
    execute_dag,
)

POSITIVE = {"good", "great", "reliable", "fast", "love"}
NEGATIVE = {"bad", "slow", "broken", "hate", "crash"}


@attrs.frozen
class Document:
    """The canonical payload: only the transforms ``parse`` and ``enrich`` replace it."""

    text: str
    sentences: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def parse(inp: ProcessorInput[Document]) -> Document:
    sentences = tuple(s for s in re.split(r"(?<=[.!?])\s+", inp.payload.text.strip()) if s)
    return attrs.evolve(inp.payload, sentences=sentences)


async def word_stats(inp: ProcessorInput[Document]) -> dict[str, int]:
    words = re.findall(r"[a-z']+", inp.payload.text.lower())
    return {"words": len(words), "sentences": len(inp.payload.sentences)}


async def sentiment(inp: ProcessorInput[Document]) -> str:
    words = set(re.findall(r"[a-z']+", inp.payload.text.lower()))
    score = len(words & POSITIVE) - len(words & NEGATIVE)
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


async def links(inp: ProcessorInput[Document]) -> list[str]:
    await trio.sleep(0.01)  # stands in for checking each link over the network
    return re.findall(r"https?://\S+", inp.payload.text)


def spelling(inp: ProcessorInput[Document]) -> list[str]:
    """A blocking, CPU-bound analyzer: it runs in a worker thread (``blocking=True``)."""
    known = {"teh": "the", "recieve": "receive", "definately": "definitely"}
    return [w for w in re.findall(r"[a-z]+", inp.payload.text.lower()) if w in known]


def enrich(inp: ProcessorInput[Document]) -> Document:
    found = {dep: outcome.result for dep, outcome in inp.dependencies.items()}
    tags = [str(found["sentiment"])]
    if found["links"]:
        tags.append("has-links")
    if found["spelling"]:
        tags.append("needs-proofreading")
    return attrs.evolve(inp.payload, tags=tuple(tags))


async def report(inp: ProcessorInput[Document]) -> str:
    doc = inp.payload
    return f"{len(doc.sentences)} sentences; tags: {', '.join(doc.tags)}"


def build_pipeline() -> Dag[Document]:
    builder = DagBuilder[Document]()
    builder.add("parse", parse, intent=Intent.TRANSFORM)
    builder.add("word_stats", word_stats, after=["parse"])
    builder.add("sentiment", sentiment, after=["parse"])
    builder.add("links", links, after=["parse"], retries=2, timeout=2.0)
    builder.add("spelling", spelling, after=["parse"], blocking=True)
    builder.add(
        "enrich",
        enrich,
        after=["word_stats", "sentiment", "links", "spelling"],
        intent=Intent.TRANSFORM,
    )
    builder.add("report", report, after=["enrich"])
    return builder.build()


def pipeline_diagram() -> str:
    """The Mermaid picture of the pipeline, for the docs."""
    return dag_to_mermaid(build_pipeline())


TEXT = (
    "I love how fast and reliable the new release is. Teh upgrade was great! "
    "Details at https://example.org/notes. One report said it was slow on old disks."
)


async def main() -> DagResult[Document]:
    result = await execute_dag(build_pipeline(), Document(TEXT), limit=4)
    for pid, outcome in result.outcomes.items():
        print(f"{pid:>10}: {outcome.state.name:<7} {outcome.result!r}"[:100])
    print("report:", result.outcomes["report"].result)
    return result


if __name__ == "__main__":
    trio.run(main)
