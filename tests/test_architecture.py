"""The layout rules of docs/architecture.md: every module of the packages is listed there (and nothing that no
longer exists); each stage imports only the stages before it; no import circle; no module over 450 lines;
other libraries' internals only in their compat module."""

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def listed_modules() -> set[str]:
    """Paths in the first column of the module table; ``a/b.py`, `c.py`` shorthand means ``a/c.py``."""
    found = set()
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        folder = None
        for path in re.findall(r"`([^`]+\.py)`", first):
            if "/" in path:
                folder = path.rsplit("/", 1)[0]
                found.add(path)
            elif folder:
                found.add(f"{folder}/{path}")
    return found


def package_modules() -> set[str]:
    return {str(p.relative_to(ROOT)) for pkg in ("tuning", "estimators") for p in (ROOT / pkg).rglob("*.py")
            if p.name != "__init__.py" and p.name != "__main__.py"}


def test_every_module_is_in_the_table():
    missing = package_modules() - listed_modules()
    assert not missing, f"add these to the module table of docs/architecture.md: {sorted(missing)}"


def test_the_table_lists_no_module_that_is_gone():
    gone = listed_modules() - package_modules()
    assert not gone, f"docs/architecture.md lists modules that do not exist: {sorted(gone)}"


# ---- imports only forward, no circle, short modules ------------------------------------------------------
# The stages in the order the data flows (docs/architecture.md "Modules"): a module imports only modules of
# its own stage or of an earlier one. The shared modules (estimators, compat, errors, records, parallel,
# figures) import none of the stages.

# Inside a stage, its folders in the same order (a fraction of the stage): a module of the estimators' shared
# pieces never imports our MLP, the MLP never the user's model or the stack; the search's space never a
# trial, a trial never the store, the store never a scheduler. The first prefix that matches decides.
STAGES = [("estimators.common", -0.5), ("estimators.compat", -0.4), ("estimators.mlp", -0.3),
          ("estimators.own_model", -0.2), ("estimators.stacked", -0.2), ("estimators", 0),
          ("tuning.search.space", 2.5), ("tuning.search.trial", 2.6), ("tuning.search.store", 2.7),
          ("tuning.search.schedulers", 2.8), ("tuning.compat", 0), ("tuning.errors", 0), ("tuning.records", 0),
          ("tuning.parallel", 0), ("tuning.figures", 0), ("tuning.config", 1), ("tuning.data", 2),
          ("tuning.search", 3), ("tuning.tracking", 4), ("tuning.export", 5), ("tuning.coordination", 5),
          ("tuning.report", 6), ("tuning.plan", 7), ("tuning.study", 7), ("tuning.cli", 8), ("tuning", 9)]
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (a package by its ``__init__``)."""
    found = {}
    for pkg in ("tuning", "estimators"):
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the packages it imports (anywhere in it: a function's import counts)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets |= {resolve(f"{node.module}.{alias.name}") or resolve(node.module) for alias in node.names}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def stage(module: str) -> int:
    return next(rank for prefix, rank in STAGES if module == prefix or module.startswith(prefix + "."))


def test_each_stage_imports_only_the_stages_before_it():
    assert (stage("estimators.common.hyperparams") < stage("estimators.mlp.build") < stage("estimators.own_model.factory")
            < stage("estimators") < stage("tuning.config.schema"))  # the order itself
    assert (stage("tuning.search.space") < stage("tuning.search.trial.runner") < stage("tuning.search.store.optuna")
            < stage("tuning.search.schedulers.optuna") < stage("tuning.search.lr_range") < stage("tuning.tracking"))
    backward = [f"{m} -> {t}" for m, targets in sorted(import_graph().items()) for t in sorted(targets)
                if stage(t) > stage(m)]
    assert not backward, "imports against the data flow (docs/architecture.md, Modules): " + "; ".join(backward)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected components of more than one module."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself
    assert circles(import_graph()) == []


def test_no_module_over_450_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines each): {long}"


# ---- the public APIs of our dependencies only ----------------------------------------------------------
# Another library's internals (a private module, a ``_name`` of its objects or classes, a private method we
# override) are used in its compat module alone (``tuning/compat/``, ``estimators/compat/``), each with the
# reason and a test in tests/test_compat.py that fails when the library changes it.

LIBRARIES = ("optuna", "mlflow", "keras", "tensorflow", "scikeras", "sklearn")
SCANNED = ("tuning", "estimators", "benchmarks")
COMPAT = ("tuning/compat/", "estimators/compat/")


def _sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(), filename=str(p))
            for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` of a name or attribute chain (None for anything else)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the dotted path it was imported as."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _resolved(node: ast.AST, aliases: dict[str, str]) -> str | None:
    dotted = _dotted(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def _library_bases(trees: dict[str, ast.Module]) -> set[str]:
    """The classes of the libraries that our classes subclass, as dotted paths."""
    bases = set()
    for tree in trees.values():
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    path = _resolved(base, aliases)
                    if path and path.split(".")[0] in LIBRARIES:
                        bases.add(path)
    return bases


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return getattr(_import(module), name)


def _their_private_names(bases: set[str]) -> set[str]:
    """Every private name the library classes we subclass (and their libraries' bases) define: a method
    of ours with one of these names overrides a library internal."""
    names = set()
    for path in bases:
        for klass in _import(path).__mro__:
            if klass.__module__.split(".")[0] in LIBRARIES:
                names.update(name for name in vars(klass) if _private(name))
    return names


def _sets_on_self(call: ast.Call) -> bool:
    """``setattr(self, "_x", v)`` or ``object.__setattr__(self, "_x", v)``."""
    func = call.func
    named = (isinstance(func, ast.Name) and func.id == "setattr") or (isinstance(func, ast.Attribute)
                                                                       and func.attr == "__setattr__")
    return (named and len(call.args) >= 3 and isinstance(call.args[-3], ast.Name) and call.args[-3].id == "self"
            and isinstance(call.args[-2], ast.Constant) and isinstance(call.args[-2].value, str))


def _our_private_names(trees: dict[str, ast.Module]) -> set[str]:
    """The private names our code defines: functions, classes, module and class attributes, ``self._x``."""
    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
            elif isinstance(node, ast.Call) and _sets_on_self(node):  # object.__setattr__(self, "_x", value)
                names.add(node.args[-2].value)
            elif isinstance(node, ast.alias) and node.name.split(".")[0] not in LIBRARIES:
                names.add(node.asname or node.name)
    return {name for name in names if _private(name)}


def _internal_uses(path: str, tree: ast.Module, ours: set[str], theirs: set[str]) -> list[str]:
    found = []
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                parts = module.split(".")
                if parts[0] in LIBRARIES and (any(_private(p) or p == "src" for p in parts[1:])
                                              or parts[:2] == ["tensorflow", "python"]):
                    found.append(f"{where}: imports {module}, a private module of {parts[0]}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
                found += [f"{where}: imports {node.module}.{a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute):
            full = _resolved(node, aliases) or ""
            if full.split(".")[0] in LIBRARIES and node.attr in ("src", "python", "__internal__"):
                found.append(f"{where}: uses {full}, a private module of {full.split('.')[0]}")
            elif _private(node.attr) and (node.attr in theirs or node.attr not in ours):
                found.append(f"{where}: uses .{node.attr}, another library's internal")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            name = node.args[1].value
            if _private(name) and (name in theirs or name not in ours):
                found.append(f"{where}: uses {node.func.id}(..., {name!r}), another library's internal")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in theirs:
                    found.append(f"{path}:{item.lineno}: {node.name}.{item.name} overrides a library's private method")
    return found


def test_other_libraries_internals_only_in_their_compat_module():
    trees = _sources()
    ours = _our_private_names(trees)
    theirs = _their_private_names(_library_bases(trees))
    found = [use for path, tree in trees.items() if not path.startswith(COMPAT)
             for use in _internal_uses(path, tree, ours - theirs, theirs)]
    assert not found, ("another library's internals outside its compat module (use its public API, or move the "
                       "use into tuning/compat/ or estimators/compat/ with the reason and a test):\n"
                       + "\n".join(sorted(found)))
