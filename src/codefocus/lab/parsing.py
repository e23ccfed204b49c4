"""Tokens and statements of Java, Python and C++ programs, through tree-sitter grammars from
PyPI."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from codefocus.errors import UnknownNameError

LANGUAGES = ("java", "python", "cpp")
# statements that can be deleted on their own (a block or a method body is not one)
JAVA_STATEMENTS = {
    "expression_statement",
    "local_variable_declaration",
    "if_statement",
    "for_statement",
    "enhanced_for_statement",
    "while_statement",
    "do_statement",
    "return_statement",
    "break_statement",
    "continue_statement",
    "throw_statement",
    "try_statement",
    "switch_expression",
    "synchronized_statement",
    "assert_statement",
    "labeled_statement",
    "yield_statement",
    "try_with_resources_statement",
}
PYTHON_STATEMENTS = {
    "expression_statement",
    "return_statement",
    "if_statement",
    "for_statement",
    "while_statement",
    "try_statement",
    "with_statement",
    "raise_statement",
    "assert_statement",
    "pass_statement",
    "break_statement",
    "continue_statement",
    "delete_statement",
    "global_statement",
    "nonlocal_statement",
    "import_statement",
    "import_from_statement",
    "match_statement",
}


CPP_STATEMENTS = {
    "expression_statement",
    "declaration",
    "if_statement",
    "for_statement",
    "for_range_loop",
    "while_statement",
    "do_statement",
    "return_statement",
    "break_statement",
    "continue_statement",
    "switch_statement",
    "try_statement",
    "throw_statement",
    "goto_statement",
}
STATEMENTS = {"java": JAVA_STATEMENTS, "python": PYTHON_STATEMENTS, "cpp": CPP_STATEMENTS}
# a loop's own initialiser is part of the loop, not a statement that can go on its own
LOOP_INITIALISERS = {"local_variable_declaration", "declaration"}
# the bodies a statement must sit in to be deletable (C++: not a global declaration)
CPP_BLOCKS = {
    "compound_statement",
    "case_statement",
    "if_statement",
    "for_statement",
    "while_statement",
    "do_statement",
    "for_range_loop",
    "else_clause",
}


@lru_cache(maxsize=3)
def parser_for(language: str):
    from tree_sitter import Language, Parser

    if language == "java":
        import tree_sitter_java as grammar
    elif language == "python":
        import tree_sitter_python as grammar  # type: ignore[no-redef]
    elif language == "cpp":
        import tree_sitter_cpp as grammar  # type: ignore[no-redef]
    else:
        raise UnknownNameError(f"unknown language {language!r}: choose from {', '.join(LANGUAGES)}")
    return Parser(Language(grammar.language()))


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # byte offsets into the UTF-8 source
    end: int
    kind: str


@dataclass(frozen=True)
class CodeStatement:
    start: int
    end: int
    kind: str
    depth: int  # nesting depth among statements

    def contains(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end


@dataclass
class Parsed:
    source: bytes
    language: str
    tokens: list[Token]
    statements: list[CodeStatement]  # in post-order: children before their parent
    has_error: bool

    def text(self, statement: CodeStatement) -> str:
        return self.source[statement.start : statement.end].decode("utf-8", errors="replace")


def parse(code: str, language: str) -> Parsed:
    source = code.encode("utf-8")
    tree = parser_for(language).parse(source)
    kinds = STATEMENTS[language]
    tokens: list[Token] = []
    statements: list[CodeStatement] = []

    def visit(node, depth: int) -> None:
        if is_comment(node):
            return
        is_statement = is_statement_node(node, kinds, language)
        for child in node.children:
            visit(child, depth + (1 if is_statement else 0))
        if node.child_count == 0 and node.end_byte > node.start_byte:
            text = source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")
            tokens.append(Token(text, node.start_byte, node.end_byte, node.type))
        if is_statement:
            statements.append(CodeStatement(node.start_byte, node.end_byte, node.type, depth))

    visit(tree.root_node, 0)
    tokens.sort(key=lambda t: t.start)
    return Parsed(source, language, tokens, statements, tree.root_node.has_error)


def is_comment(node) -> bool:
    return node.type == "comment" or node.type.endswith("_comment")


def is_statement_node(node, kinds: set[str], language: str) -> bool:
    """A statement that can be deleted on its own."""
    if node.type not in kinds:
        return False
    parent = node.parent
    if parent is not None and parent.type == "for_statement" and node.type in LOOP_INITIALISERS:
        return False  # a for loop's own initialiser
    if language == "cpp" and node.type == "declaration":
        return parent is not None and parent.type in CPP_BLOCKS  # not a global or a parameter
    return True


def innermost_statement(parsed: Parsed, start: int, end: int) -> int | None:
    """Index of the smallest statement containing the byte range, or None."""
    best = None
    for index, statement in enumerate(parsed.statements):
        if statement.contains(start, end) and (
            best is None
            or statement.end - statement.start
            < parsed.statements[best].end - parsed.statements[best].start
        ):
            best = index
    return best


def delete(parsed: Parsed, indices: set[int]) -> str:
    """The program with the given statements (and everything nested in them) removed.

    Java and C++: a statement becomes ``;`` (valid wherever a statement is). Python: ``pass``
    keeps the block non-empty.
    """
    spans = sorted({(parsed.statements[i].start, parsed.statements[i].end) for i in indices})
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    filler = b"pass" if parsed.language == "python" else b";"
    out, cursor = [], 0
    for start, end in merged:
        out += [parsed.source[cursor:start], filler]
        cursor = end
    out.append(parsed.source[cursor:])
    return b"".join(out).decode("utf-8", errors="replace")
