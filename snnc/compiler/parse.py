"""Text to IR. The only module that imports lark."""
from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ir
from .resources import resource_dir
from .source import SnncError, Source, Span

# Friendly names for terminals in "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a quoted file name", "LBRACE": "'{'", "RBRACE": "'}'",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "EQUAL": "'='", "COLON": "':'",
    "ASSIGN_OP": "'=' or '+='", "COMPARE_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*' or '/'",
    "POW_OP": "'^'", "NEG": "'-'", "NOT": "'not'", "TRUE": "'true'", "FALSE": "'false'", "NONE": "'none'",
    "TYPE": "a type ('float' or 'bool')", "OPTIONAL": "'?'", "SEMICOLON": "';'", "$END": "end of file",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (resource_dir("grammars") / "snn.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _span(source: Source, meta) -> ir.Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(source.name, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(source: Source, tok: Token) -> Span:
    return Span(source.name, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)


def _expected(tokens) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, f"'{t.lower()}'" if t.isupper() else t) for t in tokens})
    keywords = [n for n in names if n.startswith("'")]
    others = [n for n in names if not n.startswith("'")]
    listed = others + keywords
    if len(listed) > 8:
        listed = listed[:8] + ["..."]
    return ", ".join(listed)


def _syntax_error(source: Source, exc: UnexpectedInput) -> SnncError:
    line, col = exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1
    if isinstance(exc, UnexpectedCharacters):
        char = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else "?"
        message = f"unexpected character {char!r}"
        hint = "names are letters, digits and '_'; comments start with '#'"
        width = 1
    elif isinstance(exc, UnexpectedToken) and exc.token.type == "$END" or isinstance(exc, UnexpectedEOF):
        message = "unexpected end of file"
        lines = source.text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        hint = f"expected {_expected(exc.expected)}"
        width = 1
        opened = _unclosed_brace(source.text)
        if "RBRACE" in exc.expected and opened is not None:
            message = "this '{' is never closed"
            line, col = opened
            hint = "add the missing '}' where the block ends"
    else:
        tok = exc.token
        message = f"unexpected {'name' if tok.type == 'NAME' else 'token'} '{tok}'"
        expected = getattr(exc, "accepts", None) or exc.expected
        if {"NAME", "NUMBER", "LPAR"} <= set(expected):
            hint = "expected an expression (a name, a number or '(') here"
        else:
            hint = f"expected {_expected(expected)}"
        width = max(1, len(str(tok)))
    span = Span(source.name, line, col, line, col + width)
    return SnncError(f"syntax error: {message}", span, hint, source)


def _unclosed_brace(text: str) -> tuple[int, int] | None:
    """(line, column) of the innermost '{' left open at the end of the text, skipping comments and strings."""
    stack: list[tuple[int, int]] = []
    line, col, in_comment, in_string = 1, 0, False, False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment, in_string = line + 1, 0, False, False
        elif in_comment:
            continue
        elif ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "#":
            in_comment = True
        elif ch == "{":
            stack.append((line, col))
        elif ch == "}" and stack:
            stack.pop()
    return stack[-1] if stack else None


def parse_source(source: Source) -> list:
    """Parse one file into its items, plain values that `assemble` turns into IR:

    ('import', path, span), ('neuron', name, items, span, name_span), ('network', name, items, span),
    ('block', name, params, nodes, span, name_span). Expressions are already IR (`ir.Expr`), settings and
    layer arguments `ir.Value`s.
    """
    _count_neurons(source)
    try:
        tree = _parser().parse(source.text)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    _check_depth(source, tree)
    try:
        items = _Build(source).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SnncError):
            raise exc.orig_exc from None
        raise
    _check_levels(source, items)
    return items


MAX_NEURONS = 1000  # neurons a file sees, imports included: check derives each (SymPy, ~10 ms), so its time grows
_NEURON_LINE = re.compile(r"^[ \t]*neuron[ \t]+\w+", re.MULTILINE)


def _count_neurons(source: Source) -> None:
    """Refuse a file of more than MAX_NEURONS neurons before parsing it (parsing 20,000 takes half a minute)."""
    for i, match in enumerate(_NEURON_LINE.finditer(source.text)):
        if i == MAX_NEURONS:
            line = source.text.count("\n", 0, match.start()) + 1
            col = match.start() - (source.text.rfind("\n", 0, match.start()) + 1) + 1
            raise SnncError(f"more than {MAX_NEURONS} neurons (imports included)",
                            Span(source.name, line, col, line, col + len(match.group(0).strip()) + 1),
                            TOO_MANY_NEURONS, source)


TOO_MANY_NEURONS = "snnc check derives each neuron's kernels (about 10 ms each): split the file, or import only the " \
            "neurons a network uses"
MAX_DEPTH = 100  # levels of operators and calls (and of lists in values): every later stage walks them recursively
_STRUCTURE = 10  # the levels a file's own structure takes in the parse tree (start, neuron, charge, assign, ...)
_LEVELS = (ir.Unary, ir.BinOp, ir.Call, ir.ListValue, ir.CallValue)  # what a level is: an operator, a call, a list


def _too_deep(source: Source, span) -> SnncError:
    return SnncError(f"expression nested more than {MAX_DEPTH} levels deep", span,
                     f"snnc allows {MAX_DEPTH} levels of operators and calls: split it over several "
                     "statements or states, or group a long sum with parentheses", source)


def _check_depth(source: Source, tree) -> None:
    """A first, coarse bound on the parse tree (without recursion), so that building the IR (recursive) is
    safe; a parse-tree level is at most one IR level, so it never refuses what `_check_levels` allows."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > 2 * MAX_DEPTH + _STRUCTURE:
            raise _too_deep(source, _span(source, node.meta))
        stack.extend((child, depth + 1) for child in node.children if hasattr(child, "children"))


def _check_levels(source: Source, items) -> None:
    """The limit itself, exactly: no expression or value of the file nests more than MAX_DEPTH operators,
    calls or lists; located at the first level past it (found without recursion)."""
    stack = [(items, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _LEVELS):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(source, node.span)
        if isinstance(node, ir.Node):
            children = [getattr(node, f) for f in type(node).model_fields if f != "span"]
        elif isinstance(node, (tuple, list)):
            children = node
        else:
            continue
        stack.extend((c, depth) for c in children if isinstance(c, (ir.Node, tuple, list)))


def parse_expr(text: str, name: str = "<expr>") -> ir.Expr:
    """Parse a lone expression (used for built-in surrogate formulas and tests)."""
    src = Source(name, f"neuron _ {{ require {text}\n charge v = v }}")
    _, _, items, _, _ = parse_source(src)[0]
    return next(i for i in items if isinstance(i, ir.Require)).cond


def to_value(node, source: Source) -> ir.Value:
    """An expression used as a setting or layer argument, as a plain value."""
    match node:
        case ir.Lit() | ir.ListValue() | ir.CallValue():
            return node
        case ir.Num(value=v):
            return ir.Lit(value=v, span=node.span)
        case ir.Unary(op="-", operand=ir.Num(value=v)):
            return ir.Lit(value=-v, span=node.span)
        case ir.Bool(value=v):
            return ir.Lit(value=v, span=node.span)
        case ir.Var(name=n):
            return ir.Lit(value=n, span=node.span)
        case ir.Call(func=f, args=args):
            return ir.CallValue(func=f, args=tuple(to_value(a, source) for a in args), span=node.span)
    raise SnncError("expected a number, a name, a list or a call here", getattr(node, "span", None),
                    "settings and layer arguments are constants, not expressions", source)


class _Build(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _err(self, message, meta_or_tok, hint=None):
        span = _token_span(self.source, meta_or_tok) if isinstance(meta_or_tok, Token) else _span(self.source, meta_or_tok)
        return SnncError(message, span, hint, self.source)

    # ----- expressions
    @v_args(meta=True)
    def num(self, meta, children):
        value = float(children[0])
        if value == float("inf"):
            raise self._err(f"number {children[0]} is too large", meta, "numbers must fit a 64-bit float (about 1.8e308)")
        if value == 0.0 and any(c in "123456789" for c in str(children[0]).lower().split("e")[0]):
            raise self._err(f"number {children[0]} is too small: it would be 0", meta,
                            "numbers other than 0 must be at least about 4.9e-324 (a 64-bit float); write 0 for zero")
        return ir.Num(value=value, span=_span(self.source, meta))

    @v_args(meta=True)
    def true(self, meta, _):
        return ir.Bool(value=True, span=_span(self.source, meta))

    @v_args(meta=True)
    def false(self, meta, _):
        return ir.Bool(value=False, span=_span(self.source, meta))

    @v_args(meta=True)
    def var(self, meta, children):
        return ir.Var(name=str(children[0]), span=_span(self.source, meta))

    @v_args(meta=True)
    def unary(self, meta, children):
        op, operand = children
        return ir.Unary(op="-" if op.type == "NEG" else "not", operand=self._expr(operand), span=_span(self.source, meta))

    @v_args(meta=True)
    def binop(self, meta, children):
        left, op, right = children
        return ir.BinOp(op=str(op), left=self._expr(left), right=self._expr(right), span=_span(self.source, meta))

    def _expr(self, node):
        if isinstance(node, ir.CallValue):
            raise SnncError(f"'{node.func}(...)' with named arguments is not an expression", node.span,
                            "named arguments are for layers and settings; in an expression pass values by position",
                            self.source)
        return node

    @v_args(meta=True)
    def call(self, meta, children):
        name, *args = children
        args = [a for a in args if a is not None]
        span = _span(self.source, meta)
        if any(isinstance(a, tuple) for a in args):
            return self._call_value(name, args, span)
        return ir.Call(func=str(name), args=tuple(self._expr(a) for a in args), span=span)

    def _call_value(self, name, args, span):
        positional = tuple(to_value(a, self.source) for a in args if not isinstance(a, tuple))
        named = tuple((a[0], to_value(a[1], self.source)) for a in args if isinstance(a, tuple))
        return ir.CallValue(func=str(name), args=positional, kwargs=named, span=span)

    @v_args(meta=True)
    def named_arg(self, meta, children):
        return (str(children[0]), children[1], _span(self.source, meta))

    kwarg = named_arg

    # ----- neuron items
    @v_args(meta=True)
    def param(self, meta, children):
        # `param NAME [: TYPE [?]] = default`: the '?' leaves no placeholder when the type is given without it
        name, *annotation, default = children
        type_ = next((t for t in annotation if isinstance(t, Token) and t.type == "TYPE"), None)
        optional = any(isinstance(t, Token) and t.type == "OPTIONAL" for t in annotation)
        if isinstance(default, Token):  # NONE
            default_expr, optional = None, True
        else:
            default_expr = default
        if type_ is None:
            type_ = "bool" if isinstance(default_expr, ir.Bool) else "float"
        return ir.Param(name=str(name), type=str(type_), optional=bool(optional), default=default_expr,
                        span=_span(self.source, meta))

    @v_args(meta=True)
    def learnable(self, meta, children):
        return ir.Learnable(name=str(children[0]), init=children[1], span=_span(self.source, meta))

    @v_args(meta=True)
    def state(self, meta, children):
        return ir.State(name=str(children[0]), init=children[1], span=_span(self.source, meta))

    @v_args(meta=True)
    def assign(self, meta, children):
        name, op, value = children
        return ir.Assign(target=str(name), op=str(op), value=value, span=_span(self.source, meta))

    @v_args(meta=True)
    def ode(self, meta, children):
        lhs, value = children
        target = str(lhs).split("/")[0].strip()[1:]
        return ir.Assign(target=target, op="d/dt", value=value, span=_span(self.source, meta))

    @v_args(meta=True)
    def integrate(self, meta, children):
        return ("integrate", str(children[0]), _span(self.source, meta))

    @v_args(meta=True)
    def charge(self, meta, children):
        return ("charge", tuple(children), _span(self.source, meta))

    @v_args(meta=True)
    def on_spike(self, meta, children):
        return ("on_spike", tuple(children), _span(self.source, meta))

    @v_args(meta=True)
    def require(self, meta, children):
        return ir.Require(cond=children[0], span=_span(self.source, meta))

    @v_args(meta=True)
    def surrogate(self, meta, children):
        name, *kwargs = children
        return ("surrogate", str(name), [k for k in kwargs if k is not None], _span(self.source, meta))

    @v_args(meta=True)
    def custom_surrogate(self, meta, children):
        grad, *kwargs = children
        return ("custom_surrogate", grad, [k for k in kwargs if k is not None], _span(self.source, meta))

    @v_args(meta=True)
    def output(self, meta, children):
        return ("output", str(children[0]), _span(self.source, meta))

    @v_args(meta=True)
    def neuron(self, meta, children):
        name, *items = children
        return ("neuron", str(name), items, _span(self.source, meta), _token_span(self.source, name))

    # ----- networks
    @v_args(meta=True)
    def expr_value(self, meta, children):
        return children[0]

    @v_args(meta=True)
    def and_value(self, meta, children):
        return ir.Lit(value="and", span=_span(self.source, meta))

    @v_args(meta=True)
    def none_value(self, meta, children):
        return ir.Lit(value=None, span=_span(self.source, meta))

    @v_args(meta=True)
    def list_value(self, meta, children):
        items = tuple(to_value(c, self.source) for c in children if c is not None)
        return ir.ListValue(items=items, span=_span(self.source, meta))

    @v_args(meta=True)
    def setting(self, meta, children):
        return ("setting", str(children[0]), children[1], _span(self.source, meta), _token_span(self.source, children[0]))

    def layer_name(self, children):
        return children[0]

    @v_args(meta=True)
    def layer(self, meta, children):
        name, *args = children
        return (str(name), [a for a in args if a is not None], _token_span(self.source, name), _span(self.source, meta))

    @v_args(meta=True)
    def node(self, meta, children):
        label = children[0]
        layer = children[1]
        refs = [(str(t), _token_span(self.source, t)) for t in children[2:] if isinstance(t, Token) and t.type == "NAME"]
        return ("node", None if label is None else (str(label), _token_span(self.source, label)), layer,
                refs, _span(self.source, meta))

    @v_args(meta=True)
    def layers(self, meta, children):
        return ("layers", children, _span(self.source, meta))

    @v_args(meta=True)
    def block_param(self, meta, children):
        name, default = children
        return ("block_param", str(name), None if default is None else to_value(default, self.source),
                _span(self.source, meta))

    @v_args(meta=True)
    def block(self, meta, children):
        name, *rest = children
        params = [c[1:] for c in rest if isinstance(c, tuple) and c[0] == "block_param"]
        nodes = [c for c in rest if isinstance(c, tuple) and c[0] == "node"]
        return ("block", str(name), params, nodes, _span(self.source, meta), _token_span(self.source, name))

    @v_args(meta=True)
    def train(self, meta, children):
        return ("train", children, _span(self.source, meta))

    @v_args(meta=True)
    def network(self, meta, children):
        name, *items = children
        return ("network", str(name), items, _span(self.source, meta), _token_span(self.source, name))

    @v_args(meta=True)
    def import_(self, meta, children):
        return ("import", str(children[0])[1:-1], _span(self.source, meta))

    @v_args(meta=True)
    def library_import(self, meta, children):
        return ("library", ".".join(str(c) for c in children), _span(self.source, meta))

    def start(self, children):
        return list(children)
