"""Mermaid ``stateDiagram-v2`` source for a :class:`~fsmflow.diagrams._model.Diagram`.

Written here rather than by transitions' Mermaid engine so that every label is drawn the
way a reader expects: a state with hooks is a box titled with its name over one line per
hook (``entry / send_reminder``, UML's notation for entry and exit activities), an edge
carrying several events lists them separated by commas, final states lead to the end
marker, and no label ever shows a literal ``\\n``. Small machines are drawn left to right,
larger ones top down. Only the current state of a machine and the "any state" node carry a
style of their own, so the rest follows the page's theme (light or dark).
"""

from __future__ import annotations

import json

from ._model import ANY_STATE_ID, ANY_STATE_LABEL, Diagram

# Characters that would end or split a statement, start a comment, or be read as markup,
# written as Mermaid entity codes (``#60;`` is drawn as ``<``). Line breaks in a name become
# spaces: each line of a label is chosen by the writer, never by the data.
_ESCAPES = {ord(c): f"#{ord(c)};" for c in '"#%:;<>[]{}\\&'} | {
    ord("\n"): " ",
    ord("\r"): " ",
    ord("\t"): " ",
}
#: Machines with at most this many states are drawn left to right; larger ones top down,
#: which keeps them narrow enough for a page column at full text size.
MAX_STATES_LEFT_TO_RIGHT = 4

#: Class name -> Mermaid style of the highlighted current state (the colours of the
#: flowcharts' ``current`` class, so every engine highlights alike).
CURRENT_CLASS = "current"
_CURRENT_STYLE = "fill:#fff3c4,stroke:#c77c00,stroke-width:3px,color:#000"
#: The dashed "any state" node that handlers without declared targets lead to.
PSEUDO_CLASS = "anyState"
_PSEUDO_STYLE = "fill:none,stroke:#888,stroke-dasharray:5 5,color:#888"


def text(value: str) -> str:
    """``value`` made safe inside a Mermaid state-diagram label."""
    return value.translate(_ESCAPES)


def state_diagram(diagram: Diagram) -> str:
    """Mermaid source for ``diagram``, ending with a newline."""
    out = [
        "---",
        f"title: {json.dumps(diagram.title.replace(chr(10), ' '), ensure_ascii=False)}",
        "---",
        "stateDiagram-v2",
        f"  direction {'LR' if len(diagram.nodes) <= MAX_STATES_LEFT_TO_RIGHT else 'TB'}",
    ]
    for node in diagram.nodes:
        out.append(f'  state "{text(node.name)}" as {node.id}')
        out += [f"  {node.id}: entry / {text(hook)}" for hook in node.entry_hooks]
        out += [f"  {node.id}: exit / {text(hook)}" for hook in node.exit_hooks]
    if diagram.has_any_state:
        out.append(f'  state "{ANY_STATE_LABEL}" as {ANY_STATE_ID}')
    out.append(f"  [*] --> {diagram.initial}")
    for edge in diagram.edges:
        # One line; Mermaid wraps a long one at its spaces.
        label = ", ".join(text(label) for label in edge.labels)
        out.append(f"  {edge.source} --> {edge.target}: {label}")
    out += [f"  {final} --> [*]" for final in diagram.finals]
    if diagram.active is not None:
        out.append(f"  classDef {CURRENT_CLASS} {_CURRENT_STYLE}")
        out.append(f"  class {diagram.active} {CURRENT_CLASS}")
    if diagram.has_any_state:
        out.append(f"  classDef {PSEUDO_CLASS} {_PSEUDO_STYLE}")
        out.append(f"  class {ANY_STATE_ID} {PSEUDO_CLASS}")
    return "\n".join(out) + "\n"
