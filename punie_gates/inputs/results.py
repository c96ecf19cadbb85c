"""Tool results as data: the text a typed tool's result prints as, checked against the catalog.

A query in data/queries.toml gives, per typed tool, what the world returns when the
model's code calls that tool. For a tool that returns fields it is the result's
repr, as Punie prints its pydantic results and as its training data shows them:

    TypeCheckResult(success=False, error_count=1, warning_count=0,
                    errors=[TypeCheckError(file='src/a.py', line=3, ...)], parse_error=None)

It is read with `ast` (never evaluated): one call whose keyword arguments are exactly
the tool's result fields in the catalog, list fields holding calls whose keywords
are exactly the item fields; class names are free. Authors may spread it over lines;
`normalise_result` prints it on one line the way Python's repr would. A tool that
returns text gets its text as written.
"""

from __future__ import annotations

import ast

from punie_gates.inputs.catalog import TypedTool
from punie_gates.inputs.facts import numbers_mentioned

_LITERALS = (ast.Constant, ast.List, ast.Tuple, ast.UnaryOp, ast.Dict)


def check_result(tool: TypedTool, text: str) -> list[str]:
    """Why `text` is not a result of `tool` (empty when it is one)."""
    if not isinstance(text, str) or not text.strip():
        return ["must be a non-empty string"]
    if tool.returns_text:
        return []
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        return [f"is not a Python expression like Name(field=value, ...) (line {exc.lineno}: {exc.msg})"]
    problems: list[str] = []
    _check_object(node, tool.fields, tool, "", problems)
    return problems


def _check_object(node: ast.expr, fields: frozenset[str], tool: TypedTool, where: str, problems: list[str]) -> None:
    label = where or "the result"
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        problems.append(f"{label} must be Name(field=value, ...) with keyword arguments only")
        return
    given = [k.arg for k in node.keywords if k.arg is not None]
    if len(given) < len(node.keywords):
        problems.append(f"{label} uses ** (write every field out)")
        return
    missing = sorted(fields - set(given))
    extra = sorted(set(given) - fields)
    if missing:
        problems.append(f"{label} lacks {', '.join(missing)} (the catalog's {tool.name} has them)")
    if extra:
        problems.append(f"{label} has {', '.join(extra)}, which the catalog's {tool.name} lacks")
    for keyword in node.keywords:
        if keyword.arg is None:
            continue  # refused above
        inner = f"{where}.{keyword.arg}" if where else keyword.arg
        item_fields = tool.item_fields.get(keyword.arg)
        if item_fields is None:
            if not _is_literal(keyword.value):
                problems.append(f"{inner} must be a literal (str, number, True/False/None or a list of them)")
            continue
        if not isinstance(keyword.value, ast.List):
            problems.append(f"{inner} must be a list")
            continue
        for index, element in enumerate(keyword.value.elts):
            _check_object(element, item_fields, tool, f"{inner}[{index}]", problems)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return isinstance(node, _LITERALS)


def normalise_result(tool: TypedTool, text: str) -> str:
    """The result as the tool message carries it: one line, as repr prints it (text as is)."""
    if tool.returns_text:
        return text
    return ast.unparse(ast.parse(text.strip(), mode="eval"))


def readable_text(text: str) -> str:
    """The result text followed by each of its string values as the model reads them
    (repr writes a newline as \\n, which would glue the words around it)."""
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except (SyntaxError, ValueError):
        return text
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return "\n".join([text, *strings])


def result_numbers(text: str) -> frozenset[float]:
    """Numbers a tool message supports: every number in it (read generously), each
    list's length, and the sums and differences of each result's top-level integers
    ("15 tests: 14 passed, 1 failed"; "3 of 5 fixable, 2 not")."""
    values = set(numbers_mentioned(text))
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except (SyntaxError, ValueError):
        return frozenset(values)  # plain text: its numbers only
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            values.add(float(len(node.elts)))
    for statement in tree.body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if not isinstance(call, ast.Call):
            continue
        counts = [
            k.value.value for k in call.keywords if isinstance(k.value, ast.Constant) and type(k.value.value) is int
        ]
        values.add(float(sum(counts)))
        for i, a in enumerate(counts):
            for b in counts[i + 1 :]:
                values.update({float(a + b), float(abs(a - b))})
    return frozenset(values)
