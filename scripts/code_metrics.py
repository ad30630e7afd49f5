"""Structure metrics of the package, for the refactor's before/after (issue: one visible pipeline).

Prints: import cycles among loravet's own modules (module-level imports, ``TYPE_CHECKING`` blocks excluded),
function-local imports of loravet modules, ``dict[str, Any]`` occurrences, functions over 60 lines, and the
violations of ruff's complexity rules (C901 at 10, PLR0911/0912/0915) with the rules the project enables.

    python scripts/code_metrics.py [--src src/loravet] [--list]
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPLEXITY_RULES = "C901,PLR0911,PLR0912,PLR0915"


def module_name(path: Path, src_root: Path) -> str:
    rel = path.relative_to(src_root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve_from(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _import_targets(node: ast.Import | ast.ImportFrom, mod: str, is_pkg: bool, modules: set[str]) -> list[str]:
    """The loravet modules one import statement names."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    else:
        base = resolve_from(mod, is_pkg, node)
        for a in node.names:
            cand = f"{base}.{a.name}"
            out.append(cand if cand in modules else base)
    return [t for t in out if t == "loravet" or t.startswith("loravet.")]


def _nested_bodies(node: ast.AST) -> list[list[Any]]:
    """The statement lists inside a compound statement (the handlers of a try, an except handler's body)."""
    out: list[list[Any]] = []
    for name in ("body", "orelse", "finalbody", "handlers"):
        sub = getattr(node, name, None)
        if isinstance(sub, list):
            out.append(
                [s for s in sub if isinstance(s, ast.stmt)] + [h for h in sub if isinstance(h, ast.ExceptHandler)]
            )
    if isinstance(node, ast.ExceptHandler):
        out.append(node.body)
    return out


def imports_of(tree: ast.Module, mod: str, is_pkg: bool, modules: set[str]) -> tuple[set[str], list[tuple[int, str]]]:
    """Module-level loravet imports, and function-local ones (line, target)."""
    top: set[str] = set()
    local: list[tuple[int, str]] = []

    def walk(body: list[Any], in_func: bool) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found = _import_targets(node, mod, is_pkg, modules)
                if in_func:
                    local.extend((node.lineno, t) for t in found)
                else:
                    top.update(found)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(node.body, True)
            else:
                for sub in _nested_bodies(node):
                    walk(sub, in_func)

    walk(tree.body, False)
    return top, local


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of size > 1 (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


@dataclass
class Measured:
    modules: set[str]
    graph: dict[str, set[str]] = field(default_factory=dict)  # module-level imports
    full: dict[str, set[str]] = field(default_factory=dict)  # function-local ones too
    local_imports: list[str] = field(default_factory=list)
    long_funcs: list[str] = field(default_factory=list)
    dict_any: int = 0


def measure(src: Path) -> Measured:
    """Imports, `dict[str, Any]` and long functions of every module under `src`."""
    files = sorted(src.rglob("*.py"))
    m = Measured({module_name(f, src) for f in files})
    for f in files:
        text = f.read_text()
        m.dict_any += text.count("dict[str, Any]")
        tree = ast.parse(text)
        mod = module_name(f, src)
        top, local = imports_of(tree, mod, f.name == "__init__.py", m.modules)
        # importing a submodule imports its packages first
        m.graph[mod] = {d for d in top if d != mod}
        m.full[mod] = m.graph[mod] | {t for _, t in local if t != mod}
        m.local_imports += sorted({f"{f}:{line} -> {t}" for line, t in local})
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > 60:
                    m.long_funcs.append(f"{f}:{node.lineno} {node.name} ({n} lines)")
    return m


def ruff_complexity(src: Path) -> list[dict[str, Any]] | None:
    """ruff's complexity violations (C901 at 10) under the project's configuration; None when ruff fails."""
    ruff = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            str(src),
            "--select",
            COMPLEXITY_RULES,
            "--config",
            "lint.mccabe.max-complexity=10",
            "--output-format",
            "json",
            "--exit-zero",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if ruff.returncode != 0:
        print(f"ruff failed: {ruff.stderr.strip()}", file=sys.stderr)
        return None
    violations: list[dict[str, Any]] = json.loads(ruff.stdout or "[]")
    return violations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="src/loravet")
    ap.add_argument("--list", action="store_true", help="list every item, not only the counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    m = measure(Path(args.src))
    cyc = cycles(m.graph)
    latent = cycles(m.full)
    violations = ruff_complexity(Path(args.src))
    if violations is None:
        return 2
    result = {
        "modules": len(m.modules),
        "import_cycles (module level)": len(cyc),
        "import_cycles counting function-local imports": len(latent),
        "function_local_loravet_imports": len(m.local_imports),
        "dict_str_any": m.dict_any,
        "functions_over_60_lines": len(m.long_funcs),
        f"ruff_violations({COMPLEXITY_RULES}; C901>10)": len(violations),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:48} {v}")
    if args.list:
        _print_lists(cyc, latent, m, violations)
    return 0


def _print_lists(cyc: list[list[str]], latent: list[list[str]], m: Measured, violations: list[dict[str, Any]]) -> None:
    print("\ncycles:")
    for c in cyc:
        print("  " + " <-> ".join(c))
    print("\ncycles counting function-local imports (strongly connected sets of modules):")
    for c in latent:
        print(f"  [{len(c)}] " + ", ".join(c))
    print("\nfunction-local imports:")
    for s in m.local_imports:
        print("  " + s)
    print("\nfunctions over 60 lines:")
    for s in m.long_funcs:
        print("  " + s)
    print("\nruff complexity:")
    for v in violations:
        print(f"  {v['filename']}:{v['location']['row']} {v['code']} {v['message']}")


if __name__ == "__main__":
    raise SystemExit(main())
