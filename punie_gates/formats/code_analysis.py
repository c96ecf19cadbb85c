"""What `execute_code` code does with Punie's typed tools, read with `ast` and never run.

The scorer needs two facts about a model's code: which typed tools it really calls
(a tool named in a comment or a string is not a call) and which fields it reads from
their results. Values are followed through one pass over the code in source order:
assignments and simple aliases, attribute chains, subscripts, loops, comprehensions,
`enumerate`, `sorted`/`list`, `getattr` with a literal name and walrus. The pass is
flow-insensitive (both branches of an `if` are read, a loop body once), which is what
a scorer wants: it asks what the code reads, not what one run would print.

Limits, on purpose: tuple unpacking binds nothing except `a, b = x, y` and
`for i, item in enumerate(...)`; a function defined in the code and never called
still counts its tool calls; a typed tool's name that the code itself rebinds (def,
class, assignment, parameter) is treated as the code's own function, never a call.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from punie_gates.inputs.catalog import Catalog

# Every typed result is a pydantic model: these attributes exist on all of them but
# are not data fields, so reading one is neither a field read nor a hallucination.
_MODEL_ATTRIBUTES = frozenset(
    {
        "model_dump",
        "model_dump_json",
        "model_copy",
        "model_fields",
        "model_fields_set",
        "model_json_schema",
        "model_computed_fields",
        "model_config",
        "dict",
        "json",
        "copy",
    }
)
# Builtins that hand back the list they were given (reordered or copied).
_SAME_LIST = frozenset({"sorted", "list", "reversed", "tuple", "iter"})
# Builtins that pick one item out of a list.
_ONE_ITEM = frozenset({"next", "min", "max"})

_EMPTY: Mapping[str, frozenset[str]] = MappingProxyType({})


@dataclass(frozen=True)
class CodeFacts:
    parsed: bool
    error: str | None  # why the code does not parse
    calls: tuple[str, ...]  # typed tools called, in order of first call
    fields: Mapping[str, frozenset[str]]  # tool -> result fields read (top-level and item)
    # tool -> attributes read that its result does not have, e.g. "violations[].fix"
    unknown_fields: Mapping[str, frozenset[str]] = field(default_factory=lambda: _EMPTY)
    # calls Punie would answer with a TypeError, e.g. "git_status() is missing its required argument 'path'"
    bad_calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Value:
    """What an expression evaluates to, as far as the tools go."""

    tool: str
    kind: str  # "result" | "text" | "list" | "item" | "pairs" (enumerate over a list)
    container: str = ""  # for list/item/pairs: the list-valued field


def analyse_code(code: str, catalog: Catalog) -> CodeFacts:
    """Typed-tool calls and result-field reads in `code`; never executes it."""
    try:
        tree = compile(
            code,
            "<execute_code>",
            "exec",
            flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            dont_inherit=True,
        )
    except SyntaxError as exc:
        return CodeFacts(False, f"line {exc.lineno}: {exc.msg}", (), _EMPTY)
    except ValueError as exc:  # e.g. NUL bytes in the source
        return CodeFacts(False, str(exc), (), _EMPTY)
    analyser = _Analyser(catalog, _rebound_tool_names(tree, catalog))
    try:
        analyser.visit_block(tree.body)
    except RecursionError:
        return CodeFacts(False, "code nests too deeply to analyse", (), _EMPTY)
    return analyser.facts()


def _rebound_tool_names(tree: ast.AST, catalog: Catalog) -> frozenset[str]:
    """Typed-tool names the code binds itself; imports do not count (they fetch the tool)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return frozenset(bound & set(catalog.typed))


class _Analyser:
    def __init__(self, catalog: Catalog, rebound: frozenset[str]) -> None:
        self.typed = catalog.typed
        self.rebound = rebound
        self.env: dict[str, _Value] = {}
        self.calls: dict[str, None] = {}  # ordered set
        self.fields: dict[str, set[str]] = {}
        self.unknown: dict[str, set[str]] = {}
        self.bad_calls: dict[str, None] = {}  # ordered set of arity problems

    def facts(self) -> CodeFacts:
        freeze = lambda d: MappingProxyType({k: frozenset(v) for k, v in d.items()})  # noqa: E731
        return CodeFacts(
            True, None, tuple(self.calls), freeze(self.fields), freeze(self.unknown), tuple(self.bad_calls)
        )

    # --- statements ------------------------------------------------------------------

    def visit_block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit(stmt)

    def visit(self, node: ast.stmt) -> None:
        method = getattr(self, f"_visit_{type(node).__name__}", None)
        if method is not None:
            method(node)
        else:
            self.walk(node)

    def _visit_Assign(self, node: ast.Assign) -> None:
        target = node.targets[0]
        if (
            len(node.targets) == 1
            and isinstance(target, (ast.Tuple, ast.List))
            and isinstance(node.value, (ast.Tuple, ast.List))
            and len(target.elts) == len(node.value.elts)
            and not any(isinstance(e, ast.Starred) for e in target.elts + node.value.elts)
        ):
            values = [self.eval(e) for e in node.value.elts]
            for elt, value in zip(target.elts, values):
                self.bind(elt, value)
            return
        value = self.eval(node.value)
        for target in node.targets:
            self.bind(target, value)

    def _visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.bind(node.target, self.eval(node.value))

    def _visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.eval(node.value)
        if isinstance(node.target, ast.Name):
            self.env.pop(node.target.id, None)
        else:
            self.bind(node.target, None)

    def _visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.bind_loop(node.target, self.eval(node.iter))
        self.visit_block(node.body)
        self.visit_block(node.orelse)

    _visit_AsyncFor = _visit_For

    def _visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.eval(item.context_expr)
            if item.optional_vars is not None:
                self.bind(item.optional_vars, None)
        self.visit_block(node.body)

    _visit_AsyncWith = _visit_With

    def _visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.eval(decorator)
        self.walk(node.args)  # defaults and annotations
        self.in_scope(_param_names(node.args), lambda: self.visit_block(node.body))
        self.env.pop(node.name, None)

    _visit_AsyncFunctionDef = _visit_FunctionDef

    def _visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.eval(expr)
        self.in_scope((), lambda: self.visit_block(node.body))
        self.env.pop(node.name, None)

    def _visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.bind(target, None)

    def _visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            self.env.pop((alias.asname or alias.name).split(".")[0], None)

    _visit_ImportFrom = _visit_Import

    def walk(self, node: ast.AST) -> None:
        """Visit children in order: statements as statements, expressions for their reads."""
        if isinstance(node, ast.ExceptHandler) and node.name:
            self.env.pop(node.name, None)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self.visit(child)
            elif isinstance(child, ast.expr):
                self.eval(child)
            else:
                self.walk(child)

    def in_scope(self, hidden: tuple[str, ...], run) -> None:
        """Run `run` with some names unbound, then restore the outer bindings."""
        saved = dict(self.env)
        for name in hidden:
            self.env.pop(name, None)
        try:
            run()
        finally:
            self.env = saved

    # --- binding -----------------------------------------------------------------------

    def bind(self, target: ast.expr, value: _Value | None) -> None:
        if isinstance(target, ast.Name):
            if value is None:
                self.env.pop(target.id, None)
            else:
                self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.bind(elt, None)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, None)
        elif isinstance(target, ast.Attribute):
            self.eval(target.value)
        elif isinstance(target, ast.Subscript):
            self.eval(target.value)
            self.eval(target.slice)

    def bind_loop(self, target: ast.expr, iterable: _Value | None) -> None:
        if (
            iterable is not None
            and iterable.kind == "pairs"
            and isinstance(target, (ast.Tuple, ast.List))
            and len(target.elts) == 2
        ):
            self.bind(target.elts[0], None)
            self.bind(target.elts[1], _Value(iterable.tool, "item", iterable.container))
            return
        self.bind(target, _element(iterable))

    # --- expressions ---------------------------------------------------------------------

    def eval(self, node: ast.expr) -> _Value | None:
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is not None:
            return method(node)
        self.walk(node)
        return None

    def _eval_Name(self, node: ast.Name) -> _Value | None:
        return self.env.get(node.id) if isinstance(node.ctx, ast.Load) else None

    def _eval_Await(self, node: ast.Await) -> _Value | None:
        return self.eval(node.value)

    def _eval_NamedExpr(self, node: ast.NamedExpr) -> _Value | None:
        value = self.eval(node.value)
        self.bind(node.target, value)
        return value

    def _eval_IfExp(self, node: ast.IfExp) -> _Value | None:
        self.eval(node.test)
        body, orelse = self.eval(node.body), self.eval(node.orelse)
        return body or orelse

    def _eval_BoolOp(self, node: ast.BoolOp) -> _Value | None:
        values = [self.eval(v) for v in node.values]
        return next((v for v in values if v is not None), None)

    def _eval_Lambda(self, node: ast.Lambda) -> None:
        self.walk(node.args)
        self.in_scope(_param_names(node.args), lambda: self.eval(node.body))

    def _eval_Attribute(self, node: ast.Attribute) -> _Value | None:
        base = self.eval(node.value)
        if base is None or not isinstance(node.ctx, ast.Load):
            return None
        return self.read(base, node.attr)

    def _eval_Subscript(self, node: ast.Subscript) -> _Value | None:
        base = self.eval(node.value)
        self.eval(node.slice)
        if base is None or not isinstance(node.ctx, ast.Load):
            return None
        if base.kind == "list":
            return base if isinstance(node.slice, ast.Slice) else _Value(base.tool, "item", base.container)
        key = node.slice
        if base.kind in ("result", "item") and isinstance(key, ast.Constant) and isinstance(key.value, str):
            return self.read(base, key.value)  # dict-style access: still a read of that field
        return None

    def _eval_Call(self, node: ast.Call) -> _Value | None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name is not None and name in self.typed and name not in self.rebound and name not in self.env:
            self.eval_arguments(node)
            self.calls[name] = None
            if problem := arity_problem(
                self.typed[name],
                len(node.args),
                [k.arg for k in node.keywords],
                unpacked=any(isinstance(a, ast.Starred) for a in node.args),
            ):
                self.bad_calls[problem] = None
            return _Value(name, "text" if self.typed[name].returns_text else "result")
        if name in _SAME_LIST | _ONE_ITEM | {"enumerate", "getattr"} and name not in self.env and node.args:
            first = self.eval(node.args[0])
            self.eval_arguments(node, skip_first=True)
            if first is None:
                return None
            if name == "getattr":
                key = node.args[1] if len(node.args) > 1 else None
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    return self.read(first, key.value)
                return None
            if name == "enumerate":
                return _Value(first.tool, "pairs", first.container) if first.kind == "list" else None
            if name in _ONE_ITEM:
                return _element(first)
            return first if first.kind == "list" else None
        self.eval(func)
        self.eval_arguments(node)
        return None

    def eval_arguments(self, node: ast.Call, skip_first: bool = False) -> None:
        for arg in node.args[1:] if skip_first else node.args:
            self.eval(arg)
        for keyword in node.keywords:
            self.eval(keyword.value)

    def _eval_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
        result: list[_Value | None] = [None]

        def run() -> None:
            for generator in node.generators:
                self.bind_loop(generator.target, self.eval(generator.iter))
                for condition in generator.ifs:
                    self.eval(condition)
            if isinstance(node, ast.DictComp):
                self.eval(node.key)
                self.eval(node.value)
            else:
                result[0] = self.eval(node.elt)

        self.in_scope((), run)
        element = result[0]
        # [e for e in r.errors if ...] is still a list of the same items.
        if element is not None and element.kind == "item":
            return _Value(element.tool, "list", element.container)
        return None

    _eval_ListComp = _eval_SetComp = _eval_GeneratorExp = _eval_DictComp = _eval_comprehension

    # --- reading an attribute ------------------------------------------------------------

    def read(self, value: _Value, attr: str) -> _Value | None:
        tool = self.typed[value.tool]
        if value.kind == "text":
            if not hasattr(str, attr):
                self.unknown.setdefault(value.tool, set()).add(f"{attr} (the result is plain text)")
            return None
        if value.kind in ("list", "pairs"):
            if not hasattr(list, attr):
                self.unknown.setdefault(value.tool, set()).add(f"{value.container}.{attr} (a list)")
            return None
        if value.kind == "result":
            names, where = tool.fields, attr
        else:
            names, where = tool.item_fields.get(value.container, frozenset()), f"{value.container}[].{attr}"
        if attr in names:
            self.fields.setdefault(value.tool, set()).add(attr)
            return _Value(value.tool, "list", attr) if attr in tool.item_fields else None
        if attr not in _MODEL_ATTRIBUTES and not attr.startswith("__"):
            self.unknown.setdefault(value.tool, set()).add(where)
        return None


def arity_problem(tool, positional: int, keywords, *, unpacked: bool = False) -> str | None:
    """Why Punie would raise TypeError for a call of typed `tool` (None when the arguments fit).

    `keywords` are the keyword names given (None for a `**mapping`); a `*args` or
    `**kwargs` spread (`unpacked`, None among keywords) cannot be judged statically
    and passes. The catalog's `params` and `defaults` are Punie's signatures.
    """
    keywords = list(keywords)
    if unpacked or None in keywords:
        return None
    signature = f"{tool.name}({', '.join(tool.params)})"
    if positional > len(tool.params):
        return f"{tool.name}() takes {len(tool.params)} argument(s) but {positional} were given (Punie's {signature})"
    given = set(tool.params[:positional])
    for name in keywords:
        if name not in tool.params:
            return f"{tool.name}() got an unexpected keyword argument {name!r} (Punie's {signature})"
        if name in given:
            return f"{tool.name}() got multiple values for argument {name!r} (Punie's {signature})"
        given.add(name)
    missing = [p for p in tool.params if p not in given and p not in tool.defaults]
    if missing:
        names = " and ".join(repr(m) for m in missing)
        return f"{tool.name}() is missing its required argument {names}: Punie's {signature} raises TypeError"
    return None


def _element(value: _Value | None) -> _Value | None:
    if value is not None and value.kind == "list":
        return _Value(value.tool, "item", value.container)
    return None


def _param_names(args: ast.arguments) -> tuple[str, ...]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    return tuple(a.arg for a in every)
