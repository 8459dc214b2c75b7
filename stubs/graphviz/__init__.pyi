# Type stubs for the parts of the graphviz package (https://github.com/xflr6/graphviz) that
# fsmflow uses; the package has inline annotations but ships no py.typed marker.
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from typing import overload

__version__: str

ENGINES: set[str]
FORMATS: set[str]

class ExecutableNotFound(RuntimeError):
    def __init__(self, args: tuple[object, ...] | list[object]) -> None: ...

class CalledProcessError(subprocess.CalledProcessError): ...

def version() -> tuple[int, ...]: ...

class _Dot:
    name: str | None
    comment: str | None
    graph_attr: dict[str, str]
    node_attr: dict[str, str]
    edge_attr: dict[str, str]
    body: list[str]
    strict: bool
    engine: str
    format: str
    def __init__(
        self,
        name: str | None = None,
        comment: str | None = None,
        filename: str | None = None,
        directory: str | None = None,
        format: str | None = None,
        engine: str | None = None,
        encoding: str | None = ...,
        graph_attr: Mapping[str, str] | None = None,
        node_attr: Mapping[str, str] | None = None,
        edge_attr: Mapping[str, str] | None = None,
        body: Iterable[str] | None = None,
        strict: bool = False,
        *,
        renderer: str | None = None,
        formatter: str | None = None,
    ) -> None: ...
    def __iter__(self) -> Iterator[str]: ...
    @property
    def source(self) -> str: ...
    @property
    def directed(self) -> bool: ...
    def node(
        self,
        name: str,
        label: str | None = None,
        _attributes: Mapping[str, str] | None = None,
        **attrs: str,
    ) -> None: ...
    def edge(
        self,
        tail_name: str,
        head_name: str,
        label: str | None = None,
        _attributes: Mapping[str, str] | None = None,
        **attrs: str,
    ) -> None: ...
    def edges(self, tail_head_iter: Iterable[tuple[str, str] | str]) -> None: ...
    def attr(
        self,
        kw: str | None = None,
        _attributes: Mapping[str, str] | None = None,
        **attrs: str,
    ) -> None: ...
    @overload
    def pipe(
        self,
        format: str | None = None,
        renderer: str | None = None,
        formatter: str | None = None,
        neato_no_op: bool | int | None = None,
        quiet: bool = False,
        *,
        engine: str | None = None,
        encoding: None = None,
    ) -> bytes: ...
    @overload
    def pipe(
        self,
        format: str | None = None,
        renderer: str | None = None,
        formatter: str | None = None,
        neato_no_op: bool | int | None = None,
        quiet: bool = False,
        *,
        engine: str | None = None,
        encoding: str,
    ) -> str: ...

class Graph(_Dot): ...
class Digraph(_Dot): ...

class Source:
    source: str
    def __init__(
        self,
        source: str,
        filename: str | None = None,
        directory: str | None = None,
        format: str | None = None,
        engine: str | None = None,
        encoding: str | None = ...,
    ) -> None: ...
    def pipe(
        self,
        format: str | None = None,
        renderer: str | None = None,
        formatter: str | None = None,
        neato_no_op: bool | int | None = None,
        quiet: bool = False,
        *,
        engine: str | None = None,
        encoding: None = None,
    ) -> bytes: ...
