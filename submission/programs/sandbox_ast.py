"""The sandbox's `ast` layer: a static check of a program's syntax tree before it runs. Stdlib only; loaded by
sandbox_server.py by path (the server runs under `python -I`) and importable as submission.programs.sandbox_ast.

    problems(ast.parse(source))   # [] or ["line 3: import os: not on the allow-list", ...]

It rejects imports off an allow-list (what ARC programs import: numpy, scipy, BARC's `common` and a few pure
stdlib modules), dunder names and attributes (`().__class__.__base__.__subclasses__()` is how a program reaches
os.system without an import) but for a few harmless ones, the builtins that run text as code or reach names by
string (eval, exec, compile, open, __import__, globals, locals, vars ...), getattr-like calls whose name is not a
plain literal, and attributes that lead to files, frames or the OS (np.save, np.fromfile, .gi_frame, .ctypes ...).
No syntax check is a boundary (the name can be built at run time); this is one layer beside the OS ones.
"""

from __future__ import annotations

import ast
import re

ALLOWED_MODULES = frozenset({
    "numpy", "scipy", "common", "math", "itertools", "collections", "functools", "random", "typing", "copy",
    "dataclasses", "enum", "re", "string", "heapq", "operator", "statistics", "fractions", "__future__"})
# submodules of allowed packages that read or write files, download, or reach C by address
DENIED_MODULES = ("numpy.ctypeslib", "numpy.f2py", "numpy.distutils", "numpy.lib.format", "numpy.lib.npyio",
                  "scipy.io", "scipy.datasets")
# eval & co run text as code or hand out namespaces: never named at all (a call, an alias, a parameter)
CODE_BUILTINS = frozenset({"eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars"})
# these only read stdin (/dev/null) or start a debugger: flagged when called without being the program's own name
QUIET_BUILTINS = frozenset({"input", "breakpoint"})
# attribute by name: allowed only as a call whose name argument is a plain, non-dunder string literal
NAME_ACCESS = {"getattr": 1, "setattr": 1, "delattr": 1, "attrgetter": 0, "methodcaller": 0}
# attributes that lead to the file system, frames, code objects, C or the OS
DENIED_ATTRS = frozenset({
    "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt", "fromfile", "fromregex",
    "recfromtxt", "recfromcsv", "tofile", "dump", "memmap", "open_memmap", "DataSource", "npyio", "savemat",
    "loadmat", "mmwrite", "mmread", "io", "datasets", "f2py", "distutils",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "f_back", "f_globals",
    "f_locals", "f_builtins", "f_code", "co_code", "get_type_hints", "ForwardRef",
    "ctypes", "ctypeslib", "os", "sys", "subprocess", "builtins", "importlib", "system", "popen"})
DUNDER = re.compile(r"__[A-Za-z]\w*?__")  # `_____` (a rule drawn in text) is none
# dunders a class may define (comparison, hashing, containers, printing) and the two every module reads
HARMLESS_METHODS = frozenset({
    "__init__", "__post_init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__contains__", "__getitem__", "__setitem__",
    "__delitem__", "__bool__"})
HARMLESS_NAMES = frozenset({"__name__", "__main__"})
HARMLESS_ATTRS = frozenset({"__init__", "__name__", "__doc__"})
HARMLESS_STRINGS = HARMLESS_METHODS | HARMLESS_NAMES


def problems(tree: ast.AST) -> list[str]:
    """Every forbidden construct of the tree, in source order, each as `line N: what`."""
    nodes = list(ast.walk(tree))
    bound = bound_names(nodes)
    calls = {id(node.func): node for node in nodes if isinstance(node, ast.Call)}
    methods = {id(item) for node in nodes if isinstance(node, ast.ClassDef)
               for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for node in nodes:
        for why in node_problems(node, bound, calls, methods):
            found.append((getattr(node, "lineno", 0), why))
    return [f"line {line}: {why}" for line, why in sorted(set(found))]


def check_source(source: str) -> list[str]:
    """problems() of the source (raises SyntaxError where it does not parse)."""
    return problems(ast.parse(source, "program.py"))


def node_problems(node: ast.AST, bound: set[str], calls: dict, methods: set[int]) -> list[str]:
    out = []
    if isinstance(node, ast.Import):
        out += [import_problem(a.name) for a in node.names if import_problem(a.name)]
    elif isinstance(node, ast.ImportFrom):
        module = "." * node.level + (node.module or "")
        if problem := import_problem(module):
            out.append(problem)
        out += [f"from {module} import {a.name}: {why}" for a in node.names if (why := name_problem(a.name))]
    elif isinstance(node, ast.Attribute):
        if is_dunder(node.attr) and node.attr not in HARMLESS_ATTRS:
            out.append(f"attribute .{node.attr}: dunder attributes reach the interpreter's internals")
        elif node.attr in DENIED_ATTRS:
            out.append(f"attribute .{node.attr}: leads to files, frames or the OS")
        elif node.attr in NAME_ACCESS:
            out += name_access_problem(node.attr, calls.get(id(node)))
    elif isinstance(node, ast.Name):
        out += name_node_problem(node, bound, calls)
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        if odd := sorted(set(DUNDER.findall(node.value)) - HARMLESS_STRINGS):
            out.append(f"string naming {odd[0]}: a dunder name in text (getattr, format, annotations)")
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        harmless = id(node) in methods and node.name in HARMLESS_METHODS
        if is_dunder(node.name) and not harmless:
            out.append(f"def {node.name}: only comparison/container dunders may be defined, inside a class")
        elif node.name in CODE_BUILTINS:
            out.append(f"def {node.name}: shadows a builtin that runs code")
    for name in identifiers(node):
        if is_dunder(name) and name not in HARMLESS_NAMES:
            out.append(f"name {name}: dunder names reach the interpreter's internals")
        elif name in CODE_BUILTINS:
            out.append(f"name {name}: a builtin that runs code or hands out namespaces")
    return out


def import_problem(module: str) -> str | None:
    parts = module.split(".")
    if module.startswith(".") or parts[0] not in ALLOWED_MODULES:
        return f"import {module}: not on the allow-list (numpy, scipy, common, math, itertools, collections ...)"
    if any(p.startswith("_") for p in parts[1:]) or any(module == d or module.startswith(d + ".")
                                                        for d in DENIED_MODULES):
        return f"import {module}: a private or file/C-reaching part of an allowed package"
    return None


def name_problem(name: str) -> str | None:
    """What is wrong with a name taken by `from m import name`."""
    if is_dunder(name) and name not in HARMLESS_NAMES:
        return "dunder names reach the interpreter's internals"
    if name in DENIED_ATTRS or name in CODE_BUILTINS or name in NAME_ACCESS:
        return "leads to files, frames, code or the OS"
    return None


def name_node_problem(node: ast.Name, bound: set[str], calls: dict) -> list[str]:
    name, call = node.id, calls.get(id(node))
    if is_dunder(name) and name not in HARMLESS_NAMES:
        return [f"name {name}: dunder names reach the interpreter's internals"]
    if name in CODE_BUILTINS:
        return [f"{name}: a builtin that runs code or hands out namespaces"]
    if name in QUIET_BUILTINS and call is not None and name not in bound:
        return [f"{name}(): reads the terminal or starts a debugger"]
    if name in NAME_ACCESS:
        return name_access_problem(name, call)
    if name in DENIED_ATTRS and isinstance(node.ctx, ast.Load) and name not in bound:
        return [f"name {name}: leads to files, frames or the OS (from a star import?)"]
    return []


def name_access_problem(func: str, call: ast.Call | None) -> list[str]:
    """getattr(x, "name") is fine; getattr(x, name), getattr(x, "__class__") or `g = getattr` are not."""
    if call is None:
        return [f"{func} not called directly: attribute access by name only with a literal name"]
    k = NAME_ACCESS[func]
    names = call.args[k:k + 1] if func != "attrgetter" else call.args
    if not names or call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        return [f"{func}(): the attribute name must be a plain string literal"]
    for arg in names:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return [f"{func}(): the attribute name is not a string literal"]
        if any(is_dunder(part) for part in arg.value.split(".")):
            return [f"{func}(): the attribute name {arg.value!r} is a dunder"]
        if any(part in DENIED_ATTRS for part in arg.value.split(".")):
            return [f"{func}(): the attribute {arg.value!r} leads to files, frames or the OS"]
    return []


IDENTIFIERS = {  # names a node binds or passes that are not Name/Attribute nodes themselves
    ast.arg: lambda n: [n.arg], ast.keyword: lambda n: [n.arg] if n.arg else [],
    ast.alias: lambda n: [n.asname] if n.asname else [], ast.Global: lambda n: list(n.names),
    ast.Nonlocal: lambda n: list(n.names), ast.ExceptHandler: lambda n: [n.name] if n.name else [],
    ast.MatchAs: lambda n: [n.name] if n.name else [], ast.MatchStar: lambda n: [n.name] if n.name else [],
    ast.MatchMapping: lambda n: [n.rest] if n.rest else [], ast.MatchClass: lambda n: list(n.kwd_attrs)}


def identifiers(node: ast.AST) -> list[str]:
    get = IDENTIFIERS.get(type(node))
    return get(node) if get else []


def bound_names(nodes: list[ast.AST]) -> set[str]:
    """Every name the program binds itself (assignment, parameter, def, import alias, loop or except target)."""
    out = set()
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.split(".")[0])
        else:
            out.update(identifiers(node))
    return out


def is_dunder(name: str) -> bool:
    return DUNDER.fullmatch(name) is not None


def self_test() -> None:
    """For the probe: the check rejects an import of os and passes a plain numpy program; raises if not."""
    if not check_source("import os\n") or check_source("import numpy as np\ndef main(g):\n    return np.flipud(g)\n"):
        raise RuntimeError("the syntax check does not tell `import os` from a plain numpy program")
