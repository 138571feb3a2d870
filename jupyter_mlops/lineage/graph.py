"""The result of ``%lineage``: nodes (snapshots, runs, model versions, drift reports, gate
decisions) and the edges between them, with a deterministic text form and a JSON form.

Node keys carry ids (run ids, content ids) so the sidebar can link to them. The text form shows
names, refs and verdicts, each run's id (to copy into ``mlops.reproduce``) and each gate
decision's time, with decisions in the order they were made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("snapshot", "run", "model", "drift", "gate")
KIND_TITLES = {
    "snapshot": "snapshots",
    "run": "runs",
    "model": "model versions",
    "drift": "drift reports",
    "gate": "gate decisions",
}


@dataclass(frozen=True)
class Node:
    """One object of the chain. ``order`` sorts nodes of a kind (e.g. a decision's time)."""

    key: str  # "snapshot:<id>", "run:<run_id>", "model:<name>/<version>", "drift:...", "gate:..."
    kind: str
    label: str
    detail: str = ""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    order: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    relation: str


@dataclass(frozen=True)
class Lineage:
    """What is known about how ``subject`` came to be and what it led to.

    ``notes`` say what could not be found (a plain MLflow run has no snapshots or cell source);
    such gaps never raise.
    """

    subject: str  # the key of the node asked about
    query: str  # what the user typed
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    notes: tuple[str, ...] = ()

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    @property
    def snapshots(self) -> list[Node]:
        return self.of_kind("snapshot")

    @property
    def runs(self) -> list[Node]:
        return self.of_kind("run")

    @property
    def models(self) -> list[Node]:
        return self.of_kind("model")

    @property
    def drift_reports(self) -> list[Node]:
        return self.of_kind("drift")

    @property
    def decisions(self) -> list[Node]:
        return self.of_kind("gate")

    def node(self, key: str) -> Node:
        for node in self.nodes:
            if node.key == key:
                return node
        raise KeyError(key)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        subject = self.node(self.subject)
        lines = [f"lineage of {self.query} ({subject.kind} {subject.label})"]
        width = max([len(n.label) for n in self.nodes] + [8])
        for kind in KINDS:
            for node in self.of_kind(kind):
                mark = "*" if node.key == self.subject else " "
                lines.append(f" {mark}{kind:<9} {node.label:<{width}}  {node.detail}".rstrip())
        if self.edges:
            lines.append("links:")
            labels = {n.key: n.label for n in self.nodes}
            for edge in self.edges:
                lines.append(f"  {labels[edge.source]} -> {labels[edge.target]}  ({edge.relation})")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Nodes and edges as JSON-ready data, for the sidebar and the REST API."""
        return {
            "subject": self.subject,
            "query": self.query,
            "nodes": [
                {
                    "id": n.key,
                    "kind": n.kind,
                    "label": n.label,
                    "detail": n.detail,
                    "attrs": dict(n.attrs),
                }
                for n in self.nodes
            ],
            "edges": [
                {"source": e.source, "target": e.target, "relation": e.relation} for e in self.edges
            ],
            "notes": list(self.notes),
        }


class LineageBuilder:
    """Collects nodes and edges once each, then sorts them into a :class:`Lineage`."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._edges: dict[tuple[str, str, str], Edge] = {}
        self.notes: list[str] = []

    def add(self, node: Node) -> str:
        self._nodes.setdefault(node.key, node)
        return node.key

    def nodes(self, kind: str | None = None) -> list[Node]:
        return [n for n in self._nodes.values() if kind is None or n.kind == kind]

    def link(self, source: str, target: str, relation: str) -> None:
        if source != target:
            self._edges.setdefault((source, target, relation), Edge(source, target, relation))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self, subject: str, query: str) -> Lineage:
        rank = {kind: i for i, kind in enumerate(KINDS)}

        def node_key(n: Node) -> tuple[int, str, str, str]:
            return rank[n.kind], n.order, n.label, n.key

        nodes = tuple(sorted(self._nodes.values(), key=node_key))
        position = {n.key: i for i, n in enumerate(nodes)}
        edges = tuple(
            sorted(
                (e for e in self._edges.values() if e.source in position and e.target in position),
                key=lambda e: (position[e.source], position[e.target], e.relation),
            )
        )
        return Lineage(subject, query, nodes, edges, tuple(self.notes))
