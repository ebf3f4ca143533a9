"""Every fact a playbook reads is in its plan. A read left out of the plan
(deploys/library/playbooks.py, plan, and the small deploys' *_reads) is not
an error at run time: operations/_observed.py reads it alone with
host.get_fact, one more round trip per host, which only the lab's command
count would notice. Here it fails, naming the playbook, the reading function
and the fact.

The reads are found in the code, not by running it. From each playbook's
@deploy function every call is followed (ast) into this package's deploys,
operations and helpers, other modules' @deploy functions included, with the
values the code itself tells: literals, module constants, settings.X of real
Settings, f-strings, and what a followed function returns. The host's role
decides the branches that test it; a branch the code cannot decide is
followed both ways. A read is held against the plan made so far on that walk
(plan() through planned_reads, plan_reads as the deploy calls it) by fact
class, keyword names and, where the value is known, value; a value only the
host knows (a fact's answer) is compared by name alone. It must also be
planned for its reader: the deploy's own code (BODY) or an operation.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import BuiltinMethodType, FunctionType, ModuleType

import pytest
from pyinfra import context
from pyinfra.api import Inventory
from pyinfra.context import ctx_inventory

from deploys.library import playbooks
from deploys.library.cluster import role_of, settings_for_role
from deploys.library.settings import Settings, settings_for
from operations._observed import BODY, OPERATIONS, observed, plan_reads

REPO = Path(__file__).resolve().parents[2]
# Where the walk follows calls: this package's own code.
PACKAGES = ("deploys", "operations", "facts")

# Reads no plan serves, on purpose: (file, function, fact) -> why.
UNPLANNED = {
    ("operations/paths.py", "show_diff", "FileContents"): (
        "only with --diff, and only for a file about to change: its old text, to show the diff"
    ),
    ("deploys/library/cluster.py", "host_resources", "HostResources"): (
        "another host's CPUs, memory and addresses (a worker's for its jobs and its name, the builder's for the "
        "--allow a worker derives), read on that host, not this one, once per run, by whichever host asks first"
    ),
    ("deploys/library/build_guard.py", "_builder_activity", "BuildProcesses"): (
        "the builder's build, read by a worker's deploy that would disturb it, on the builder, once per run; "
        "served from the builder's own bundle when that is read already"
    ),
}

# Values the host gives while the deploy loads, which the code passes on to
# reads planned from them: (function, variable) -> (value stood in, why).
KNOWN_AT_RUN_TIME = {
    ("builder_client_only", "home"): (
        "/home/BUILD-USER",
        "the build user's home, from LoginEnvironment; builder_client_only plans home_reads(home) itself",
    ),
}

INVENTORY_HOSTS = {"builder": "builder.distcc.internal", "worker": "worker1.distcc.internal"}
# Each role with the defaults, then with every setting a read depends on
# moved, so a read that takes its value elsewhere than its plan does differs.
SETTINGS = {
    "defaults": {"distcc_build_user": "kbuild"},
    "every read moved": {
        "distcc_build_user": "alice",
        "distcc_port": 3700,
        "distcc_tmpfs_path": "/srv/kernel-build",
        "distcc_log_dir": "/var/log/distcc-farm",
        "distcc_k3s_units": ["k3s-agent"],
        "distcc_builder_address": "10.0.0.10",
        "distcc_cross_compilers": ["aarch64-linux-gnu-gcc"],
        # The reads only these make (the builder's release, the cache dir).
        "distcc_pump": True,
        "distcc_ccache": True,
        "distcc_ccache_dir": "/var/cache/kbuild-ccache",
    },
}


class Unknown:
    """A value only the host knows."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class ContextProxy:
    """pyinfra's `host`, `state`, `inventory` or `config` as the code imports them."""

    name: str


THIS_HOST = ContextProxy("host")
_PROXIES = {id(context.host): THIS_HOST, id(context.state): ContextProxy("state"),
            id(context.inventory): ContextProxy("inventory"), id(context.config): ContextProxy("config")}


@dataclass(frozen=True)
class GetFact:
    """`<on>.get_fact`, called or handed on (gevent.spawn(worker.get_fact, F))."""

    on: str


@dataclass
class Read:
    where: str  # file:line
    file: str
    function: str
    fact: object
    kwargs: dict
    reader: str  # BODY or OPERATIONS
    how: str  # observed(...) or <host>.get_fact(...)
    planned_then: list  # the plan when it was read

    def shown(self) -> str:
        name = getattr(self.fact, "__name__", repr(self.fact))
        return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(self.kwargs.items()))})"


PURE_BUILTINS = {list, tuple, str, int, bool, sorted, len, set, frozenset, dict, min, max, any, all, sum, repr, ascii}


def known(value) -> bool:
    if isinstance(value, Unknown | ContextProxy | GetFact):
        return False
    if isinstance(value, list | tuple | set | frozenset):
        return all(known(v) for v in value)
    if isinstance(value, dict):
        return all(known(k) and known(v) for k, v in value.items())
    return True


def in_package(func) -> bool:
    return isinstance(func, FunctionType) and (func.__module__ or "").split(".")[0] in PACKAGES


def is_operation(func) -> bool:
    # pyinfra's @operation and @deploy both keep the function as _inner;
    # only @operation marks it is_idempotent.
    return hasattr(func, "_inner") and hasattr(func, "is_idempotent")


def relative(path: str) -> str:
    return str(Path(path).resolve().relative_to(REPO))


@cache
def _functions_in(path: str) -> dict[tuple[str, int], ast.FunctionDef]:
    tree = ast.parse(Path(path).read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            found[(node.name, first)] = node
    return found


def function_tree(func: FunctionType) -> ast.FunctionDef:
    return _functions_in(inspect.getsourcefile(func))[(func.__name__, func.__code__.co_firstlineno)]


def assigned_names(body: list[ast.stmt]) -> list[str]:
    """Every name a function body binds, once per binding, not looking into
    nested functions, lambdas or comprehensions (scopes of their own)."""
    names = []

    def visit(node):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
            return
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in body:
        visit(statement)
    return names


class Frame:
    def __init__(self, walk: Walk, func, locals_: set[str], ambiguous: set[str], parent: Frame | None = None):
        self.walk = walk
        self.func = func
        self.globals = func.__globals__
        self.file = relative(inspect.getsourcefile(func))
        self.locals = locals_
        self.ambiguous = ambiguous
        self.parent = parent
        self.env: dict[str, object] = {}
        self.returns: list = []

    def lookup(self, name: str):
        if name in self.locals:
            return UNKNOWN if name in self.ambiguous else self.env.get(name, UNKNOWN)
        if self.parent is not None:
            return self.parent.lookup(name)
        if name in self.globals:
            value = self.globals[name]
            return _PROXIES.get(id(value), value)
        return getattr(builtins, name, UNKNOWN)

    def bind(self, target: ast.expr, value) -> None:
        if isinstance(target, ast.Name):
            stood_in = KNOWN_AT_RUN_TIME.get((self.func.__name__, target.id))
            if stood_in is not None:
                self.walk.stood_in.add((self.func.__name__, target.id))
                value = stood_in[0]
            self.env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            values = list(value) if isinstance(value, tuple | list) and len(value) == len(target.elts) else None
            for number, element in enumerate(target.elts):
                self.bind(element, UNKNOWN if values is None else values[number])
        else:
            self.walk.value(self, target)


@dataclass
class Walk:
    """One playbook walked on a host of one role with one set of settings."""

    settings: Settings
    role: str
    plan: list = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    stood_in: set = field(default_factory=set)
    stack: list = field(default_factory=list)
    operations: int = 0

    # Functions

    def call_function(self, func: FunctionType, args: list, kwargs: dict, complete: bool):
        code = func.__code__
        if code in self.stack:
            return UNKNOWN
        tree = function_tree(func)
        parameters = inspect.signature(func).parameters
        names = assigned_names(tree.body)
        frame = Frame(self, func, set(parameters) | set(names), {n for n in set(names) if names.count(n) + (n in parameters) > 1})
        try:
            bound = inspect.signature(func).bind(*args, **kwargs) if complete else None
        except TypeError:
            bound = None
        for name, parameter in parameters.items():
            if bound is not None and name in bound.arguments and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                frame.env[name] = bound.arguments[name]
            elif bound is not None and parameter.default is not parameter.empty:
                frame.env[name] = parameter.default
            else:
                frame.env[name] = UNKNOWN
        self.stack.append(code)
        try:
            if not self.block(frame, tree.body):
                frame.returns.append(None)
        finally:
            self.stack.pop()
        if not frame.returns:
            return UNKNOWN  # it always raises
        if len(frame.returns) == 1:
            return frame.returns[0]
        first = frame.returns[0]
        if known(first) and all(known(r) and r == first for r in frame.returns):
            return first
        return UNKNOWN

    def nested(self, frame: Frame, parameters: list[str], body: list[ast.stmt] | None, expression: ast.expr | None = None):
        """A lambda, nested function or comprehension: walked once where it
        is written, its parameters unknown (whatever calls it)."""
        names = assigned_names(body or [])
        inner = Frame(self, frame.func, set(parameters) | set(names), set(names) | set(parameters), parent=frame)
        inner.env = {name: UNKNOWN for name in parameters}
        if body is not None:
            self.block(inner, body)
        if expression is not None:
            self.value(inner, expression)

    # Statements: block() says whether the block always ends (return, raise).

    def block(self, frame: Frame, body: list[ast.stmt]) -> bool:
        for statement in body:
            if self.statement(frame, statement):
                return True
        return False

    def statement(self, frame: Frame, node: ast.stmt) -> bool:
        if isinstance(node, ast.Return):
            frame.returns.append(self.value(frame, node.value) if node.value is not None else None)
            return True
        if isinstance(node, ast.Raise):
            for part in (node.exc, node.cause):
                if part is not None:
                    self.value(frame, part)
            return True
        if isinstance(node, ast.Assign):
            value = self.value(frame, node.value)
            for target in node.targets:
                frame.bind(target, value)
            return False
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                frame.bind(node.target, self.value(frame, node.value))
            return False
        if isinstance(node, ast.AugAssign):
            self.value(frame, node.value)
            frame.bind(node.target, UNKNOWN)
            return False
        if isinstance(node, ast.If):
            test = self.value(frame, node.test)
            if known(test):
                return self.block(frame, node.body if test else node.orelse)
            ends = self.block(frame, node.body)
            return self.block(frame, node.orelse) and ends
        if isinstance(node, ast.For):
            self.value(frame, node.iter)
            frame.bind(node.target, UNKNOWN)
            self.block(frame, node.body)
            self.block(frame, node.orelse)
            return False
        if isinstance(node, ast.While):
            self.value(frame, node.test)
            self.block(frame, node.body)
            self.block(frame, node.orelse)
            return False
        if isinstance(node, ast.With):
            for item in node.items:
                self.value(frame, item.context_expr)
                if item.optional_vars is not None:
                    frame.bind(item.optional_vars, UNKNOWN)
            return self.block(frame, node.body)
        if isinstance(node, ast.Try):
            self.block(frame, node.body)
            for handler in node.handlers:
                self.block(frame, handler.body)
            self.block(frame, node.orelse)
            self.block(frame, node.finalbody)
            return False
        if isinstance(node, ast.FunctionDef):
            arguments = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            self.nested(frame, arguments, node.body)
            frame.env[node.name] = UNKNOWN
            return False
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.value(frame, child)
        return False

    # Expressions: value() follows every call in them and says what it is.

    def value(self, frame: Frame, node: ast.expr):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return frame.lookup(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(self.value(frame, node.value), node.attr)
        if isinstance(node, ast.Call):
            return self.call(frame, node)
        if isinstance(node, ast.JoinedStr):
            parts = [self.value(frame, v) for v in node.values]
            return "".join(parts) if known(parts) else UNKNOWN
        if isinstance(node, ast.FormattedValue):
            value = self.value(frame, node.value)
            spec = self.value(frame, node.format_spec) if node.format_spec is not None else ""
            if not known(value) or not known(spec):
                return UNKNOWN
            value = {-1: value, ord("r"): repr(value), ord("s"): str(value), ord("a"): ascii(value)}[node.conversion]
            return format(value, spec)
        if isinstance(node, ast.BoolOp):
            for number, operand in enumerate(node.values):
                value = self.value(frame, operand)
                if not known(value):
                    for rest in node.values[number + 1 :]:
                        self.value(frame, rest)
                    return UNKNOWN
                if bool(value) == isinstance(node.op, ast.Or) or number == len(node.values) - 1:
                    return value
        if isinstance(node, ast.IfExp):
            test = self.value(frame, node.test)
            if known(test):
                return self.value(frame, node.body if test else node.orelse)
            self.value(frame, node.body)
            self.value(frame, node.orelse)
            return UNKNOWN
        if isinstance(node, ast.Compare):
            values = [self.value(frame, node.left)] + [self.value(frame, c) for c in node.comparators]
            if not all(known(v) for v in values):
                return UNKNOWN
            return all(compare(op, a, b) for op, a, b in zip(node.ops, values, values[1:], strict=False))
        if isinstance(node, ast.UnaryOp):
            operand = self.value(frame, node.operand)
            if not known(operand):
                return UNKNOWN
            return {ast.Not: lambda v: not v, ast.USub: lambda v: -v, ast.UAdd: lambda v: +v, ast.Invert: lambda v: ~v}[
                type(node.op)
            ](operand)
        if isinstance(node, ast.BinOp):
            left, right = self.value(frame, node.left), self.value(frame, node.right)
            if not (known(left) and known(right)) or not isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Mod):
                return UNKNOWN
            try:
                return {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                        ast.Mod: lambda a, b: a % b}[type(node.op)](left, right)
            except TypeError:
                return UNKNOWN
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = []
            for element in node.elts:
                if isinstance(element, ast.Starred):
                    spread = self.value(frame, element.value)
                    if not isinstance(spread, list | tuple):
                        return UNKNOWN
                    items += list(spread)
                else:
                    items.append(self.value(frame, element))
            kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
            return kind(items) if kind is not set or known(items) else UNKNOWN
        if isinstance(node, ast.Dict):
            keys = [self.value(frame, k) if k is not None else UNKNOWN for k in node.keys]
            values = [self.value(frame, v) for v in node.values]
            return dict(zip(keys, values, strict=True)) if all(known(k) for k in keys) else UNKNOWN
        if isinstance(node, ast.Subscript):
            base, index = self.value(frame, node.value), self.value(frame, node.slice)
            if known(base) and known(index) and isinstance(base, dict | list | tuple | str):
                try:
                    return base[index]
                except (KeyError, IndexError, TypeError):
                    return UNKNOWN
            return UNKNOWN
        if isinstance(node, ast.Lambda):
            self.nested(frame, [a.arg for a in node.args.args], None, node.body)
            return UNKNOWN
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            names = []
            for generator in node.generators:
                self.value(frame, generator.iter)
                names += [n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)]
            inner = Frame(self, frame.func, set(names), set(names), parent=frame)
            for generator in node.generators:
                for condition in generator.ifs:
                    self.value(inner, condition)
            for element in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
                self.value(inner, element)
            return UNKNOWN
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.value(frame, child)
        return UNKNOWN

    def attribute(self, base, name: str):
        if name == "get_fact" and not isinstance(base, ModuleType | type):
            return GetFact("this host" if base is THIS_HOST else "another host")
        if isinstance(base, ModuleType | type | FunctionType | Settings):
            return getattr(base, name, UNKNOWN)
        if isinstance(base, str | int | tuple | frozenset) and known(base):
            return getattr(base, name, UNKNOWN)
        return UNKNOWN

    def call(self, frame: Frame, node: ast.Call):
        func = self.value(frame, node.func)
        args, kwargs, complete = [], {}, True
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                self.value(frame, argument.value)
                complete = False
            else:
                args.append(self.value(frame, argument))
        for keyword in node.keywords:
            value = self.value(frame, keyword.value)
            if keyword.arg is None:
                complete = False
            else:
                kwargs[keyword.arg] = value

        if func is observed:
            on = kwargs.pop("host", None)
            how = "observed(...)" if on is None or on is THIS_HOST else "observed(..., host=another host)"
            self.read(frame, node, args[0] if args else UNKNOWN, kwargs, how)
            return UNKNOWN
        if isinstance(func, GetFact):
            self.read(frame, node, args[0] if args else UNKNOWN, kwargs, f"{func.on}'s get_fact(...)")
            return UNKNOWN
        for number, argument in enumerate(args):
            if isinstance(argument, GetFact):
                fact = args[number + 1] if number + 1 < len(args) else UNKNOWN
                self.read(frame, node, fact, {}, f"{argument.on}'s get_fact(...)")

        if func is playbooks.plan:
            assert known(args), f"{frame.file}:{node.lineno}: cannot tell what this plan() plans"
            self.plan += playbooks.planned_reads(args[0], self.role, *args[1:])
            return None
        if func is plan_reads:
            parts = args[1] if len(args) > 1 else kwargs.get("parts", UNKNOWN)
            assert known(parts), f"{frame.file}:{node.lineno}: cannot tell what this plan_reads() plans"
            self.plan += list(parts)
            return None
        # What this host is: its settings and its role, as the test sets them.
        on_this_host = bool(args) and args[0] is THIS_HOST
        if func is settings_for and on_this_host:
            return self.settings
        if func is settings_for_role and on_this_host:
            return self.settings if self.role in args[3:] else None
        if func is role_of and on_this_host:
            return self.role

        if hasattr(func, "_inner") and in_package(inspect.unwrap(func)):
            # Global arguments (name, _sudo ...) are pyinfra's, not the function's.
            kwargs = {k: v for k, v in kwargs.items() if k != "name" and not k.startswith("_")}
            operation = is_operation(func)
            self.operations += operation
            try:
                self.call_function(inspect.unwrap(func), args, kwargs, complete)
            finally:
                self.operations -= operation
            return UNKNOWN
        if in_package(func):
            return self.call_function(func, args, kwargs, complete)
        if not (complete and known(args) and known(kwargs)):
            return UNKNOWN
        pure_method = isinstance(func, BuiltinMethodType) and isinstance(func.__self__, str | int | tuple | frozenset)
        if pure_method or any(func is pure for pure in PURE_BUILTINS):
            try:
                return func(*args, **kwargs)
            except (TypeError, ValueError, KeyError, IndexError):
                return UNKNOWN
        return UNKNOWN

    def read(self, frame: Frame, node: ast.Call, fact, kwargs: dict, how: str) -> None:
        self.reads.append(Read(
            where=f"{frame.file}:{node.lineno}", file=frame.file, function=frame.func.__name__, fact=fact,
            kwargs=dict(kwargs), reader=OPERATIONS if self.operations else BODY, how=how, planned_then=list(self.plan),
        ))


def compare(op: ast.cmpop, a, b) -> bool:
    return {
        ast.Eq: lambda: a == b, ast.NotEq: lambda: a != b, ast.Is: lambda: a is b, ast.IsNot: lambda: a is not b,
        ast.In: lambda: a in b, ast.NotIn: lambda: a not in b, ast.Lt: lambda: a < b, ast.LtE: lambda: a <= b,
        ast.Gt: lambda: a > b, ast.GtE: lambda: a >= b,
    }[type(op)]()


READERS = {BODY: "the deploy's own code (BODY)", OPERATIONS: "the operations"}


def readers_of(part: tuple) -> set[str]:
    """Who a planned part is for, as plan_reads takes it."""
    who = part[2] if len(part) > 2 else OPERATIONS
    return {who} if isinstance(who, str) else set(who)


def same_value(planned, read) -> bool:
    # operations/_observed.py keys a read by "key=str(value)" (_key).
    return not known(read) or str(planned) == str(read)


def why_unplanned(read: Read) -> str | None:
    """Why the read costs a round trip of its own, or None when the plan serves it."""
    if read.how != "observed(...)":
        return f"it is read with {read.how}, which no plan serves"
    alike = [
        part for part in read.planned_then
        if part[0] is read.fact and set(part[1]) == set(read.kwargs)
        and all(same_value(part[1][k], v) for k, v in read.kwargs.items())
    ]
    if not alike:
        return "it is not in the plan"
    if not any(read.reader in readers_of(part) for part in alike):
        planned_for = " and ".join(READERS[r] for r in sorted(set().union(*(readers_of(p) for p in alike))))
        return f"it is read by {READERS[read.reader]} but planned for {planned_for} only"
    return None


def walked(playbook, role: str, data: dict) -> Walk:
    """The playbook walked on the host of this role in an inventory of one
    builder and one worker, with these settings."""
    inventory = Inventory(
        (list(INVENTORY_HOSTS.values()), data),
        builder=([INVENTORY_HOSTS["builder"]], {}),
        workers=([INVENTORY_HOSTS["worker"]], {}),
    )
    host = inventory.get_host(INVENTORY_HOSTS[role])
    walk = Walk(settings=settings_for(host), role=role)
    with ctx_inventory.use(inventory):
        walk.call_function(inspect.unwrap(playbook), [], {}, True)
    return walk


PLAYBOOKS = {
    name: function for name, function in vars(playbooks).items()
    if hasattr(function, "deploy_name") and function.__module__ == playbooks.__name__
}
CASES = [(p, r, s) for p in PLAYBOOKS for r in ("builder", "worker") for s in SETTINGS]


def findings(walk: Walk, playbook: str) -> list[str]:
    """One line per unplanned read (once, however many ways it is reached)."""
    found = []
    for read in walk.reads:
        why = why_unplanned(read)
        if why is None or (read.file, read.function, getattr(read.fact, "__name__", "")) in UNPLANNED:
            continue
        line = (
            f"{playbook} on the {walk.role}: {read.function} ({read.where}) reads {read.shown()}, and {why}: "
            f"a round trip of its own. Plan it in the *_reads of the small deploy that reads it "
            f"(deploys/library/), or, if it must stay unplanned, say why in UNPLANNED here."
        )
        if line not in found:
            found.append(line)
    return found


@pytest.mark.parametrize(("playbook", "role", "settings"), CASES)
def test_every_read_a_playbook_makes_is_planned(playbook: str, role: str, settings: str) -> None:
    found = findings(walked(PLAYBOOKS[playbook], role, SETTINGS[settings]), playbook)
    assert not found, "\n" + "\n".join(found)


def test_the_walk_sees_the_reads_of_operations_and_deploy_code() -> None:
    """The check cannot pass by seeing nothing: a worker's mode switch reads
    in its own code (the route to the builder) and in operations, with
    values worked out from the settings through several calls."""
    walk = walked(PLAYBOOKS["mode_switch"], "worker", SETTINGS["every read moved"])
    seen = {(r.fact.__name__, r.reader, tuple(sorted((k, str(v)) for k, v in r.kwargs.items()))) for r in walk.reads}
    assert ("PeerRoute", BODY, (("peer", "10.0.0.10"),)) in seen
    assert ("DistccdListening", OPERATIONS, (("port", "3700"),)) in seen
    assert ("K3sUnits", OPERATIONS, (("units", "['k3s-agent']"),)) in seen
    assert ("PathStatus", OPERATIONS, (("path", "/etc/systemd/system/distcc.service.d/override.conf.tmp"),)) in seen
    assert {"distccd_bootstrap", "mode_switch", "k3s_mode"} <= set(PLAYBOOKS)
    builder = walked(PLAYBOOKS["mode_switch"], "builder", SETTINGS["every read moved"])
    assert any(r.shown() == "ClientLogsWithJobs(paths=['/home/BUILD-USER/.distcc/client.log', "
               "'/home/BUILD-USER/.distcc/client.log.1'])" for r in builder.reads)


def test_a_read_left_out_of_the_plan_is_named(monkeypatch) -> None:
    serving = playbooks.serving_reads
    monkeypatch.setattr(playbooks, "serving_reads", lambda settings: [r for r in serving(settings) if r[0].__name__ != "FileAge"])
    found = findings(walked(PLAYBOOKS["worker_distccd_reset"], "worker", SETTINGS["defaults"]), "worker_distccd_reset")
    assert any(
        line.startswith("worker_distccd_reset on the worker: health (operations/distcc.py:")
        and "reads FileAge(path='/etc/systemd/system/distcc.service.d/override.conf'), and it is not in the plan" in line
        for line in found
    ), found


def test_every_exception_is_still_needed() -> None:
    """An entry of UNPLANNED or KNOWN_AT_RUN_TIME that no walk uses any more goes."""
    used, stood_in = set(), set()
    for playbook, role, settings in CASES:
        walk = walked(PLAYBOOKS[playbook], role, SETTINGS[settings])
        used |= {(r.file, r.function, getattr(r.fact, "__name__", "")) for r in walk.reads if why_unplanned(r)}
        stood_in |= walk.stood_in
    assert set(UNPLANNED) <= used
    assert set(KNOWN_AT_RUN_TIME) <= stood_in
