"""The compiled module, its type stub and the C header agree: no function declared but gone, none
callable but untyped."""

import ast
import re
from pathlib import Path

import stratumkit
from stratumkit import hashing_checks
from stratumkit._sha256d import ffi, lib

STUB = Path(stratumkit.__file__).resolve().parent / "_sha256d.pyi"
HEADER = Path(__file__).resolve().parents[2] / "native" / "sha256d.h"


def stub_lib() -> ast.ClassDef:
    tree = ast.parse(STUB.read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "_Lib"]
    return cls


def compiled(callables: bool) -> set[str]:
    return {name for name in dir(lib) if not name.startswith("_") and callable(getattr(lib, name)) is callables}


def header_params(function: str) -> list[str]:
    """The parameter names of `function` as the header declares it."""
    match = re.search(rf"\b{function}\(([^)]*)\);", HEADER.read_text())
    assert match, f"{function} is not declared in {HEADER.name}"
    names = []
    for param in match.group(1).split(","):
        if param.strip() == "void":
            continue
        name = re.fullmatch(r".*?(\w+)\s*(\[\w*\])?", param.strip())  # the last word, before any [n]
        assert name, param
        names.append(name.group(1))
    return names


def test_the_stub_declares_exactly_the_compiled_functions() -> None:
    declared = {node.name: node for node in stub_lib().body if isinstance(node, ast.FunctionDef)}
    assert set(declared) == compiled(callables=True)
    for name, node in declared.items():
        ctype = ffi.typeof(getattr(lib, name))
        params = node.args.args[1:]  # after self
        assert [p.arg for p in params] == header_params(name), name
        assert len(params) == len(ctype.args), name
        for param, arg in zip(params, ctype.args, strict=True):
            annotation = ast.unparse(param.annotation) if param.annotation else None
            assert annotation in (("int",) if arg.kind == "primitive" else ("bytes", "Any")), (name, param.arg)
        returns = ast.unparse(node.returns) if node.returns else None
        assert returns == ("None" if ctype.result.cname == "void" else "int"), name


def test_the_stub_declares_exactly_the_compiled_constants() -> None:
    declared = {
        node.target.id: ast.unparse(node.annotation)
        for node in stub_lib().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert set(declared) == compiled(callables=False)
    for name, annotation in declared.items():
        assert annotation == "int" and type(getattr(lib, name)) is int, name


def test_the_shared_checks_bound_the_branch_as_the_c_core_does() -> None:
    assert hashing_checks.MAX_BRANCH == lib.SK_MAX_BRANCH
