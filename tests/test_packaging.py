"""Packaging and layout: every module a script needs is installed, imports flow one way, modules stay small."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("train_dcgan", "complete", "align_faces", "simple_distributions", "convert_checkpoint")
LOCAL = {path.stem for path in ROOT.glob("*.py")} - {"setup", "conftest", "demo"}


def local_imports(module: str) -> set[str]:
    """The project's top-level modules that `module` imports anywhere in its code."""
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & LOCAL


def packaged_modules() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "py_modules":
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py lists no py_modules")


def test_every_module_a_script_imports_is_packaged():
    needed, todo = set(), list(SCRIPTS)
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo.extend(local_imports(module))
    assert needed - packaged_modules() == set()
    assert {"distribute", "checkpoints", "training", "completion", "completion_job"} <= needed


def test_every_console_script_points_at_a_packaged_main():
    text = (ROOT / "setup.py").read_text()
    for script in SCRIPTS:
        assert f"={script}:main" in text
        assert "def main(" in (ROOT / f"{script}.py").read_text()


def test_no_module_imports_a_script():
    for module in LOCAL - set(SCRIPTS):
        assert local_imports(module) & set(SCRIPTS) == set(), module


def test_imports_flow_one_way():
    # scripts -> completion_job/training -> completion -> model -> checkpoints/ops/distribute -> layouts/utils
    order = ["utils", "layouts", "face_alignment", "ops", "distribute", "checkpoints", "model", "completion",
             "completion_job", "photo_completion", "training"]
    for rank, module in enumerate(order):
        later = set(order[rank + 1:])
        top_level = {node.module if isinstance(node, ast.ImportFrom) else alias.name
                     for node in ast.parse((ROOT / f"{module}.py").read_text()).body
                     if isinstance(node, (ast.Import, ast.ImportFrom))
                     for alias in node.names}
        assert top_level & later == set(), f"{module} imports {top_level & later} at the top"


def test_modules_are_small_and_say_their_job():
    for module in LOCAL:
        text = (ROOT / f"{module}.py").read_text()
        assert len(text.splitlines()) <= 520, f"{module}.py has {len(text.splitlines())} lines"
        assert ast.get_docstring(ast.parse(text)), f"{module}.py has no docstring"
