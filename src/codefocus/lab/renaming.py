"""Single-place variable renaming: one variable renamed to ``varN`` everywhere it occurs.

The memorization study's semantics-preserving transformation: a program is *critical* when one
such renaming changes a model's prediction. Python renaming is driven by ``ast`` and checked by
re-parsing (the renamed tree must equal the original tree with the name substituted); Java
renaming uses tree-sitter, scoped to the method that declares the variable.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from typing import Any

from codefocus.lab.parsing import parser_for


def fresh_name(code: str) -> str:
    """``varN`` with the smallest N that does not occur in the code."""
    used = set(re.findall(r"\bvar\d+\b", code))
    number = 0
    while f"var{number}" in used:
        number += 1
    return f"var{number}"


# ---------------------------------------------------------------- Python


class _Substitute(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:  # noqa: N802 (ast's naming)
        if node.id == self.old:
            node.id = self.new
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        if node.arg == self.old:
            node.arg = self.new
        self.generic_visit(node)
        return node


def python_variables(code: str) -> list[str]:
    """Variables bound inside functions that can be renamed safely, in order of first binding.

    Renaming must not change what the code means to anything outside it, so never: names bound
    at module or class level (they are attributes other code can reach), parameters that a
    caller can pass by keyword (positional-only, ``*args`` and ``**kwargs`` are fine),
    ``self``/``cls``, builtins, imports, ``global``/``nonlocal``, ``except ... as`` and ``match``
    captures (their positions are not recorded), function and class names, and any name used as
    a keyword argument.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    candidates: list[str] = []
    unsafe = {"self", "cls", *dir(builtins)}

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            candidates.extend(a.arg for a in arguments.posonlyargs)
            candidates.extend(a.arg for a in (arguments.vararg, arguments.kwarg) if a)
            unsafe.update(a.arg for a in arguments.args + arguments.kwonlyargs)
            if not isinstance(node, ast.Lambda):
                unsafe.add(node.name)
            inner = True
        elif isinstance(node, ast.ClassDef):
            unsafe.add(node.name)
            inner = False  # names bound in a class body are class attributes
        else:
            inner = in_function
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                if in_function:
                    candidates.append(node.id)
                else:
                    unsafe.add(node.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                unsafe.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Global | ast.Nonlocal):
                unsafe.update(node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                unsafe.add(node.name)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                unsafe.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                unsafe.add(node.rest)
            elif isinstance(node, ast.keyword) and node.arg:
                unsafe.add(node.arg)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return [name for name in dict.fromkeys(candidates) if name not in unsafe]


def rename_python(code: str, old: str, new: str | None = None) -> str | None:
    """The code with every occurrence of variable ``old`` renamed; None when not provably safe."""
    new = new or fresh_name(code)
    if keyword.iskeyword(new) or not new.isidentifier():
        raise ValueError(f"not a valid new name: {new!r}")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    lines = code.splitlines(keepends=True)
    encoded = [line.encode("utf-8") for line in lines]
    edits: list[tuple[int, int]] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Name) and node.id == old) or (
            isinstance(node, ast.arg) and node.arg == old
        ):
            edits.append((node.lineno - 1, node.col_offset))
    if not edits:
        return None
    for line, column in sorted(set(edits), reverse=True):
        text = encoded[line]
        if text[column : column + len(old.encode())] != old.encode():
            return None
        encoded[line] = text[:column] + new.encode() + text[column + len(old.encode()) :]
    renamed = b"".join(encoded).decode("utf-8")
    expected = _Substitute(old, new).visit(tree)
    try:
        if ast.dump(ast.parse(renamed)) != ast.dump(expected):
            return None
    except (SyntaxError, ValueError):
        return None
    return renamed


# ---------------------------------------------------------------- Java

_JAVA_DECLARATIONS = {
    "variable_declarator": "local_variable_declaration",
    "formal_parameter": None,
    "catch_formal_parameter": None,
    "enhanced_for_statement": None,
    "resource": None,
}
_JAVA_SCOPES = {"method_declaration", "constructor_declaration", "lambda_expression"}


def _java_tree(code: str):
    source = code.encode("utf-8")
    return source, parser_for("java").parse(source)


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _scope(node):
    while node is not None and node.type not in _JAVA_SCOPES:
        node = node.parent
    return node


def _java_declared(root) -> list[tuple[str, Any]]:
    """(name, scope node) of every local variable and parameter, in source order."""
    found = []
    for node in _walk(root):
        if node.type not in _JAVA_DECLARATIONS:
            continue
        parent_kind = _JAVA_DECLARATIONS[node.type]
        if parent_kind and (node.parent is None or node.parent.type != parent_kind):
            continue  # a field, not a local variable
        name = node.child_by_field_name("name")
        scope = _scope(node)
        if name is not None and name.type == "identifier" and scope is not None:
            found.append((name.text.decode("utf-8", errors="replace"), scope))
    return found


def java_variables(code: str) -> list[str]:
    """Local variables and parameters of the program's methods, in order of declaration."""
    source, tree = _java_tree(code)
    if tree.root_node.has_error:
        return []
    fields = set()
    for node in _walk(tree.root_node):
        if node.type == "variable_declarator" and node.parent.type == "field_declaration":
            fields.add(node.child_by_field_name("name").text.decode("utf-8", errors="replace"))
    return [
        n for n in dict.fromkeys(n for n, _ in _java_declared(tree.root_node)) if n not in fields
    ]


def _is_reference(node) -> bool:
    """An identifier that names a variable (not a field selected with '.', a method or a type)."""
    parent = node.parent
    if parent is None:
        return False
    if parent.type == "field_access" and parent.child_by_field_name("field") == node:
        return False
    if parent.type == "method_invocation" and parent.child_by_field_name("name") == node:
        return False
    if parent.type in ("method_declaration", "class_declaration", "constructor_declaration"):
        return parent.child_by_field_name("name") != node
    return True


def rename_java(code: str, old: str, new: str | None = None) -> str | None:
    """Rename variable ``old`` inside every method that declares it; None when nothing changes."""
    new = new or fresh_name(code)
    source, tree = _java_tree(code)
    if tree.root_node.has_error:
        return None
    scopes = {(s.start_byte, s.end_byte): s for n, s in _java_declared(tree.root_node) if n == old}
    spans = set()
    for scope in scopes.values():
        for node in _walk(scope):
            if node.type == "identifier" and node.text == old.encode() and _is_reference(node):
                spans.add((node.start_byte, node.end_byte))
    if not spans:
        return None
    out, cursor = [], 0
    for start, end in sorted(spans):
        out += [source[cursor:start], new.encode()]
        cursor = end
    out.append(source[cursor:])
    renamed = b"".join(out).decode("utf-8", errors="replace")
    return None if parser_for("java").parse(renamed.encode()).root_node.has_error else renamed


def single_renamings(code: str, language: str, limit: int | None = None) -> list[str]:
    """Programs that differ from ``code`` by renaming one variable to ``varN``: one program per
    variable that can be renamed safely, in order of first binding (the first ``limit`` of them
    when bounded; None, the default, renames each variable, as the memorization study does)."""
    variables = python_variables(code) if language == "python" else java_variables(code)
    rename = rename_python if language == "python" else rename_java
    variants: list[str] = []
    for name in variables:
        if limit is not None and len(variants) >= limit:
            break
        renamed = rename(code, name)
        if renamed is not None and renamed != code:
            variants.append(renamed)
    return variants
