"""Imports point down only (STYLE.md): cli > apiserver | components > client | registry > store > api.

Checked on the source (ast), so a violating import fails here even if no test
happens to execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "skiff"

#: Package → the skiff packages it must not import.
FORBIDDEN = {
    "api": ("store", "registry", "apiserver", "cli"),
    "store": ("registry", "apiserver", "cli"),
    "registry": ("apiserver", "cli"),
    "apiserver": ("cli",),
    "localcluster": ("cli",),
    # The density harness is a client of the cluster it starts: no registry or component internals.
    "density": ("cli", "registry", "controllers", "scheduler", "kubelet", "proxy", "etcdoperator"),
    "client": ("store", "registry", "apiserver", "cli", "controllers", "scheduler", "kubelet", "proxy", "etcdoperator"),
    # Components are clients of the REST API like any other user: no back door into the store.
    **{
        component: ("store", "registry", "apiserver", "cli")
        for component in ("controllers", "scheduler", "kubelet", "proxy", "etcdoperator")
    },
}


def skiff_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "skiff" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_lower_layers(package: str) -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(skiff_imports(path) & set(FORBIDDEN[package]))
        for path in sorted((SRC / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
