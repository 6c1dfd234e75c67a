"""Packaging and layout: every module a script needs is installed, imports flow one way, modules stay small."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("train_dcgan", "complete", "align_faces", "simple_distributions", "convert_checkpoint", "serve", "train_encoder",
           "export_savedmodel")
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


def needed_modules() -> set[str]:
    """The scripts and every project module they import, directly or not."""
    needed, todo = set(), list(SCRIPTS)
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo.extend(local_imports(module))
    return needed


def test_every_module_a_script_imports_is_packaged():
    needed = needed_modules()
    assert needed - packaged_modules() == set()
    assert {"distribute", "checkpoints", "training", "completion", "completion_settings", "completion_job"} <= needed


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
    order = ["utils", "completion_settings", "training_settings", "masking", "layouts", "face_alignment", "ops", "distribute", "checkpoints", "model",
             "completion", "completion_job", "photo_completion", "training"]
    for rank, module in enumerate(order):
        later = set(order[rank + 1:])
        top_level = {node.module if isinstance(node, ast.ImportFrom) else alias.name
                     for node in ast.parse((ROOT / f"{module}.py").read_text()).body
                     if isinstance(node, (ast.Import, ast.ImportFrom))
                     for alias in node.names}
        assert top_level & later == set(), f"{module} imports {top_level & later} at the top"


def project_modules() -> set[str]:
    """setup.py's py_modules, read now (a module may be renamed there), and the scripts."""
    return packaged_modules() | set(SCRIPTS)


def imported_names(module: str) -> set[str]:
    """The top-level names of every import statement of `module`, wherever it stands (at the
    top, in a function, under `if TYPE_CHECKING:`): `import a.b` and `from a.b import c` give a."""
    path = ROOT / f"{module}.py"
    assert path.exists(), f"setup.py lists {module}, but {path.name} is missing"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: imported_names(module) & modules for module in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports (its modules, the first repeated at the end), at any depth; None if none."""
    done, path = set(), []

    def visit(module: str) -> list[str] | None:
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported in path:
                return path[path.index(imported):] + [imported]
            if imported not in done and (cycle := visit(imported)):
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done and (cycle := visit(module)):
            return cycle
    return None


def test_find_cycle_finds_cycles_at_any_depth():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"b"}}) == ["b", "c", "d", "b"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_no_import_cycle_among_the_project_modules():
    graph = import_graph()
    # Imports inside functions count: the scripts import most modules in main().
    assert {"model", "distribute", "checkpoints"} <= graph["train_dcgan"]
    assert "distribute" in graph["complete"] and "model" in graph["training"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_modules_are_small_and_say_their_job():
    for module in LOCAL:
        text = (ROOT / f"{module}.py").read_text()
        assert len(text.splitlines()) <= 520, f"{module}.py has {len(text.splitlines())} lines"
        assert ast.get_docstring(ast.parse(text)), f"{module}.py has no docstring"


def setup_keyword(name: str):
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py has no {name}")


def test_python_requires_admits_every_python_that_tensorflow_supports():
    """A python_requires narrower than TensorFlow's refuses users whose Python TensorFlow runs on."""
    import re
    from importlib.metadata import metadata

    from packaging.specifiers import SpecifierSet

    classifiers = metadata("tensorflow").get_all("Classifier")
    versions = [m.group(1) for c in classifiers if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]
    assert versions, "TensorFlow's metadata names no Python versions"
    allowed = SpecifierSet(setup_keyword("python_requires"))
    assert [v for v in versions if v not in allowed] == []


def test_the_wheel_holds_every_module_the_scripts_import(tmp_path):
    """`pip install .` (not editable) gets its modules from the wheel, not from the checkout."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "src"  # a clean copy: a stale build/ folder would hide a missing module
    source.mkdir()
    for name in ["setup.py", "requirements.txt", "README.md", *(f"{m}.py" for m in LOCAL)]:
        if (ROOT / name).exists():
            (source / name).write_bytes((ROOT / name).read_bytes())
    for package in setup_keyword("packages"):  # the web app, with its page
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "checkpoints" / "face64", source / "checkpoints" / "face64")  # the shipped model
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {Path(name).stem for name in names if name.endswith(".py") and "/" not in name}
    assert needed_modules() - packaged == set()
    static = {f"webapp/static/{path.name}" for path in (ROOT / "webapp" / "static").iterdir()}
    assert static and static | {"webapp/app.py", "webapp/jobs.py"} <= set(names)
    data = {name.split(".data/data/", 1)[1] for name in names if ".data/data/" in name}
    shipped = {f"share/dcgan-completion-tf2/{path.relative_to(ROOT / 'checkpoints').as_posix()}"
               for path in (ROOT / "checkpoints" / "face64").rglob("*") if path.is_file()}
    assert shipped <= data  # where checkpoints.default_model_dir() looks in an installed wheel
