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
from pathlib import Path

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


def imports_of(tree: ast.Module, mod: str, is_pkg: bool, modules: set[str]) -> tuple[set[str], list[tuple[int, str]]]:
    """Module-level loravet imports, and function-local ones (line, target)."""
    top: set[str] = set()
    local: list[tuple[int, str]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        out: list[str] = []
        if isinstance(node, ast.Import):
            out = [a.name for a in node.names]
        else:
            base = resolve_from(mod, is_pkg, node)
            for a in node.names:
                cand = f"{base}.{a.name}"
                out.append(cand if cand in modules else base)
        return [t for t in out if t == "loravet" or t.startswith("loravet.")]

    def walk(body: list[ast.stmt], in_func: bool) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in targets(node):
                    if in_func:
                        local.append((node.lineno, t))
                    else:
                        top.add(t)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(node.body, True)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(node, field, None)
                    if isinstance(sub, list):
                        walk(
                            [s for s in sub if isinstance(s, ast.stmt)]
                            + [h for h in sub if isinstance(h, ast.ExceptHandler)],
                            in_func,
                        )  # type: ignore[list-item]
                if isinstance(node, ast.ExceptHandler):
                    walk(node.body, in_func)

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="src/loravet")
    ap.add_argument("--list", action="store_true", help="list every item, not only the counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    src = Path(args.src)
    files = sorted(src.rglob("*.py"))
    modules = {module_name(f, src) for f in files}
    graph: dict[str, set[str]] = {}
    full: dict[str, set[str]] = {}
    local_imports: list[str] = []
    long_funcs: list[str] = []
    dict_any = 0
    for f in files:
        text = f.read_text()
        dict_any += text.count("dict[str, Any]")
        tree = ast.parse(text)
        mod = module_name(f, src)
        top, local = imports_of(tree, mod, f.name == "__init__.py", modules)
        # importing a submodule imports its packages first
        deps = set()
        for t in top:
            deps.add(t)
        graph[mod] = {d for d in deps if d != mod}
        full[mod] = graph[mod] | {t for _, t in local if t != mod}
        local_imports += sorted({f"{f}:{line} -> {t}" for line, t in local})
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > 60:
                    long_funcs.append(f"{f}:{node.lineno} {node.name} ({n} lines)")
    cyc = cycles(graph)
    latent = cycles(full)
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
        return 2
    violations = json.loads(ruff.stdout or "[]")
    result = {
        "modules": len(modules),
        "import_cycles (module level)": len(cyc),
        "import_cycles counting function-local imports": len(latent),
        "function_local_loravet_imports": len(local_imports),
        "dict_str_any": dict_any,
        "functions_over_60_lines": len(long_funcs),
        f"ruff_violations({COMPLEXITY_RULES}; C901>10)": len(violations),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:48} {v}")
    if args.list:
        print("\ncycles:")
        for c in cyc:
            print("  " + " <-> ".join(c))
        print("\ncycles counting function-local imports (strongly connected sets of modules):")
        for c in latent:
            print(f"  [{len(c)}] " + ", ".join(c))
        print("\nfunction-local imports:")
        for s in local_imports:
            print("  " + s)
        print("\nfunctions over 60 lines:")
        for s in long_funcs:
            print("  " + s)
        print("\nruff complexity:")
        for v in violations:
            print(f"  {v['filename']}:{v['location']['row']} {v['code']} {v['message']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
