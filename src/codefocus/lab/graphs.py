"""Program graphs for a GGNN (Allamanis et al., ICLR 2018), from the tree-sitter AST.

Nodes are the AST's nodes (comments left out); each has its node type and, for a leaf, its token
text split into sub-tokens. Edge types, each also added reversed:

* ``child``: parent -> child;
* ``next_sibling``: a node -> its next sibling;
* ``next_token``: a leaf -> the next leaf in source order;
* ``last_use``: an identifier -> the previous occurrence of the same name;
* ``last_write``: an identifier -> the last earlier occurrence of the same name that was written
  (the left side of an assignment, a declarator, an update, a loop variable).

The last two are the data-flow edges GGNN used for code, approximated lexically (no scopes, no
control flow): tree-sitter gives names, not bindings. Each deletable statement (the same ones as
``parsing.parse``, post-order) maps to the nodes of its subtree, so AutoFocus can sum node
attention per statement and delete a statement's subgraph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from codefocus.lab.parsing import STATEMENTS, is_comment, is_statement_node, parser_for

EDGE_KINDS = ("child", "next_sibling", "next_token", "last_use", "last_write")
NUM_EDGE_TYPES = 2 * len(EDGE_KINDS)  # each kind forward and backward
IDENTIFIERS = {"identifier", "field_identifier", "type_identifier", "namespace_identifier"}
WRITES = {  # (parent type, child field) where an identifier is written
    ("assignment_expression", "left"),
    ("update_expression", "argument"),
    ("variable_declarator", "name"),
    ("variable_declarator", "declarator"),
    ("init_declarator", "declarator"),
    ("enhanced_for_statement", "name"),
    ("for_range_loop", "declarator"),
    ("formal_parameter", "name"),
    ("parameter_declaration", "declarator"),
    ("catch_formal_parameter", "name"),
    ("assignment", "left"),
    ("augmented_assignment", "left"),
}
_SUBTOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\sA-Za-z\d_]+")


def subtokens(text: str, limit: int = 4) -> list[str]:
    """``maxValue`` -> max, value; ``MAX_SIZE`` -> max, size; operators stay whole."""
    parts = [p.lower() for p in _SUBTOKEN.findall(text)] or ([text.lower()] if text else [])
    return parts[:limit]


@dataclass
class ProgramGraph:
    node_types: list[str]
    node_tokens: list[list[str]]  # sub-tokens of a leaf; [] for an inner node
    edges: list[tuple[int, int, int]]  # (source, target, edge type), both directions included
    statement_nodes: list[list[int]]  # per deletable statement (post-order): its subtree's nodes
    statement_spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.node_types)

    def without(self, removed: set[int]) -> ProgramGraph:
        """The graph with ``removed`` nodes (and their edges) taken out, renumbered; statements
        are kept with their remaining nodes (a deleted statement has none)."""
        keep = [i for i in range(self.size) if i not in removed]
        new = {old: n for n, old in enumerate(keep)}
        return ProgramGraph(
            [self.node_types[i] for i in keep],
            [self.node_tokens[i] for i in keep],
            [(new[s], new[t], k) for s, t, k in self.edges if s in new and t in new],
            [[new[i] for i in nodes if i in new] for nodes in self.statement_nodes],
            self.statement_spans,
        )

    def delete_statements(self, indices: set[int]) -> ProgramGraph:
        """AutoFocus's deletion on the graph: the statements' subtrees (nested ones included)."""
        removed: set[int] = set()
        for index in indices:
            removed.update(self.statement_nodes[index])
        return self.without(removed)


def program_graph(code: str, language: str) -> ProgramGraph:
    source = code.encode("utf-8")
    tree = parser_for(language).parse(source)
    kinds = STATEMENTS[language]
    types: list[str] = []
    tokens: list[list[str]] = []
    edges: list[tuple[int, int, int]] = []
    leaves: list[int] = []
    names: list[tuple[int, str, bool]] = []  # (node, identifier, written) in source order
    statements: list[tuple[int, int, list[int]]] = []  # (start byte, end byte, nodes) post-order

    def add_edge(source_node: int, target: int, kind: str) -> None:
        forward = EDGE_KINDS.index(kind)
        edges.append((source_node, target, forward))
        edges.append((target, source_node, forward + len(EDGE_KINDS)))

    def visit(node) -> tuple[int, list[int]]:
        index = len(types)
        types.append(node.type)
        leaf = node.child_count == 0
        text = source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")
        tokens.append(subtokens(text) if leaf else [])
        subtree = [index]
        if leaf:
            leaves.append(index)
            if node.type in IDENTIFIERS:
                parent = node.parent
                written = parent is not None and any(
                    parent.child_by_field_name(name) == node
                    for kind, name in WRITES
                    if kind == parent.type
                )
                names.append((index, text, written))
        previous = None
        for child in node.children:
            if is_comment(child):
                continue
            child_index, child_nodes = visit(child)
            add_edge(index, child_index, "child")
            if previous is not None:
                add_edge(previous, child_index, "next_sibling")
            previous = child_index
            subtree += child_nodes
        if is_statement_node(node, kinds, language):
            statements.append((node.start_byte, node.end_byte, subtree))
        return index, subtree

    visit(tree.root_node)
    for first, second in zip(leaves, leaves[1:], strict=False):
        add_edge(first, second, "next_token")
    last_seen: dict[str, int] = {}
    last_written: dict[str, int] = {}
    for node, name, written in names:
        if name in last_seen:
            add_edge(node, last_seen[name], "last_use")
        if name in last_written:
            add_edge(node, last_written[name], "last_write")
        last_seen[name] = node
        if written:
            last_written[name] = node
    return ProgramGraph(
        types,
        tokens,
        edges,
        [nodes for _, _, nodes in statements],
        [(start, end) for start, end, _ in statements],
    )
