"""The shape of the product code: no function in the product packages is over :data:`MAX_LINES` lines.

A function that grows past the limit fails the suite with its file, line and length. The scan itself is
checked on a made-up module.
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("unirex", "store", "workbench", "cli", "ui", "app.py")
MAX_LINES = 100


def long_functions(source: str, name: str, max_lines: int = MAX_LINES) -> list[str]:
    """``"name:line function (n lines)"`` for each function or method of ``source`` longer than ``max_lines``
    (from its ``def`` line to its last line; decorators not counted; nested functions count on their own
    and inside the function that holds them)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > max_lines:
                out.append(f"{name}:{node.lineno} {node.name} ({n} lines)")
    return out


def product_files() -> list[Path]:
    files: list[Path] = []
    for entry in PRODUCT:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def test_the_scan_finds_a_long_function_and_only_it():
    body = "\n".join(f"        x{i} = {i}" for i in range(101))
    src = f"def short():\n    return 1\n\n\nclass C:\n    def long(self):\n{body}\n"
    assert long_functions(src, "m.py") == ["m.py:6 long (102 lines)"]
    assert long_functions(src, "m.py", max_lines=102) == []


def test_no_product_function_is_over_100_lines():
    files = product_files()
    assert len(files) > 50 and all(f.is_file() for f in files)  # the packages were found
    found = [hit for f in files for hit in long_functions(f.read_text(), str(f.relative_to(ROOT)))]
    assert not found, f"{len(found)} function(s) over {MAX_LINES} lines: " + "; ".join(found)
