"""The report inside a notebook: its CSS scoped to the report's own <div>, so that displaying a Report does
not restyle the notebook around it (its DataFrames, its code cells, its page margins)."""

from __future__ import annotations

import re

__all__ = ["scope_css"]

_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")


def _scope_selectors(selectors: str, root: str) -> str:
    out = []
    for sel in selectors.split(","):
        sel = sel.strip()
        if not sel:
            continue
        if sel in ("body", "html", ":root"):
            out.append(root)
        elif sel == ".loravet" or sel.startswith((".loravet ", ".loravet.", ".loravet>", ".loravet:")):
            out.append(root + sel[len(".loravet"):])  # already scoped to the report's root: make it specific
        elif sel.startswith(("body ", "html ")):
            out.append(f"{root} {sel.split(' ', 1)[1]}")
        else:
            out.append(f"{root} {sel}")
    return ",".join(out)


# the class twice and the tag: specific enough (0,2,2) to win over JupyterLab's own table rules, such as
# `:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td {text-align: right}` (0,2,1), inside the report only
ROOT = "div.loravet.loravet"


def scope_css(css: str, root: str = ROOT) -> str:
    """Every rule of a flat stylesheet, and of its @media blocks, applied under `root` only."""
    out: list[str] = []
    pos = 0
    text = css
    while pos < len(text):
        at = text.find("@", pos)
        brace = text.find("{", pos)
        if at != -1 and (brace == -1 or at < brace) and text[pos:at].strip() == "":
            # an @-block: scope the rules inside it
            open_at = text.find("{", at)
            if open_at == -1:
                break
            depth, i = 1, open_at + 1
            while i < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            inner = text[open_at + 1:i - 1]
            out.append(text[at:open_at + 1] + scope_css(inner, root) + "}")
            pos = i
            continue
        m = _RULE.match(text, pos)
        if m is None:
            break
        out.append(f"{_scope_selectors(m.group(1), root)}{{{m.group(2)}}}")
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return "\n".join(out)
