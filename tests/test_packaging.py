"""Packaging and layout: the original's files and thin scripts at the top, everything else in one
package; every module a script needs is installed; imports flow one way; functions stay short."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dcgan_completion"
DESIGN = ("train_dcgan", "complete", "align_faces", "simple_distributions", "model", "ops", "utils")
SCRIPTS = ("train_dcgan", "complete", "align_faces", "simple_distributions", "convert_checkpoint", "serve", "train_encoder",
           "export_savedmodel")
MAX_FUNCTION_LINES = 60


def module_path(name: str) -> Path | None:
    """The file of a project module ("model", "dcgan_completion.completion.engine"); None if not the project's."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return ROOT / f"{name}.py" if len(parts) == 1 and (ROOT / f"{name}.py").exists() else None
    for path in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if path.exists():
            return path
    return None


def project_modules() -> set[str]:
    """Every module that `pip install .` installs: the top-level files and the package's."""
    top = {path.stem for path in ROOT.glob("*.py")} - {"setup", "conftest", "demo"}
    inside = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
              for path in (ROOT / PACKAGE).rglob("*.py")}
    return top | inside


def imports_of(module: str, anywhere: bool = True) -> set[str]:
    """The project modules that `module` imports (anywhere in its code, or only at its top level):
    `from p.q import r` counts p.q.r where r is a module, else p.q."""
    tree = ast.parse(module_path(module).read_text())
    nodes = ast.walk(tree) if anywhere else tree.body
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {f"{node.module}.{alias.name}" if module_path(f"{node.module}.{alias.name}") else node.module
                      for alias in node.names}
    return {name for name in found if module_path(name)}


def import_graph() -> dict[str, set[str]]:
    return {module: imports_of(module) for module in project_modules()}


def needed_modules() -> set[str]:
    """The scripts and every project module they import, directly or not (packages' __init__ too)."""
    graph, needed, todo = import_graph(), set(), list(SCRIPTS)
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo.extend(graph[module])
            todo.extend(".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1))
    return needed


def setup_keyword(name: str):
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == name:
            return node.value
    raise AssertionError(f"setup.py has no {name}")


def test_only_the_designs_files_and_the_scripts_are_top_level_modules():
    top = set(ast.literal_eval(setup_keyword("py_modules")))
    assert top == set(DESIGN) | set(SCRIPTS)
    assert {path.stem for path in ROOT.glob("*.py")} - top == {"setup", "conftest", "demo"}
    assert {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()} == {PACKAGE}


def test_every_module_a_script_imports_is_installed():
    needed = needed_modules()
    assert {f"{PACKAGE}.networks.storage", f"{PACKAGE}.training.loop", f"{PACKAGE}.completion.engine",
            f"{PACKAGE}.serving.jobs"} <= needed
    assert needed <= project_modules()


def test_every_console_script_points_at_a_packaged_main():
    text = (ROOT / "setup.py").read_text()
    for script in SCRIPTS:
        assert f"={script}:main" in text
        assert "def main(" in (ROOT / f"{script}.py").read_text()


def test_no_module_imports_a_script():
    graph = import_graph()
    for module in project_modules() - set(SCRIPTS):
        assert graph[module] & set(SCRIPTS) == set(), module


LAYERS = [  # a module imports (at its top) only from its own layer or the ones before it
    ["utils", f"{PACKAGE}.runtime"],
    ["ops", f"{PACKAGE}.networks", f"{PACKAGE}.distribute", f"{PACKAGE}.faces.framing"],
    ["model"],
    [f"{PACKAGE}.training", f"{PACKAGE}.completion", f"{PACKAGE}.encoder", f"{PACKAGE}.faces.alignment",
     f"{PACKAGE}.auto_precision", f"{PACKAGE}.export"],
    [f"{PACKAGE}.serving"],
]


def layer_of(module: str) -> int:
    for rank, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return rank
    return len(LAYERS)  # the scripts


def test_imports_flow_one_way():
    for module in project_modules():
        for imported in imports_of(module):
            assert layer_of(imported) <= layer_of(module), f"{module} imports {imported}, a later layer"


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
    assert {"model", f"{PACKAGE}.distribute", f"{PACKAGE}.networks.storage"} <= graph["train_dcgan"]
    assert "model" in graph[f"{PACKAGE}.training.loop"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_modules_are_small_and_say_their_job():
    for module in project_modules():
        path = module_path(module)
        text = path.read_text()
        assert len(text.splitlines()) <= 520, f"{path} has {len(text.splitlines())} lines"
        assert ast.get_docstring(ast.parse(text)), f"{path} has no docstring"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                assert lines <= MAX_FUNCTION_LINES, f"{path}: {node.name} has {lines} lines"


def test_python_requires_admits_every_python_that_tensorflow_supports():
    """A python_requires narrower than TensorFlow's refuses users whose Python TensorFlow runs on."""
    import re
    from importlib.metadata import metadata

    from packaging.specifiers import SpecifierSet

    classifiers = metadata("tensorflow").get_all("Classifier")
    versions = [m.group(1) for c in classifiers if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]
    assert versions, "TensorFlow's metadata names no Python versions"
    allowed = SpecifierSet(ast.literal_eval(setup_keyword("python_requires")))
    assert [v for v in versions if v not in allowed] == []


def test_the_wheel_holds_every_module_the_scripts_import_and_no_other_top_level_name(tmp_path):
    """`pip install .` (not editable) gets its modules from the wheel, not from the checkout."""
    import shutil
    import subprocess
    import sys
    import zipfile

    from dcgan_completion.networks import storage

    source = tmp_path / "src"  # a clean copy: a stale build/ folder would hide a missing module
    source.mkdir()
    for name in ["setup.py", "requirements.txt", "README.md", *(f"{m}.py" for m in DESIGN + SCRIPTS)]:
        (source / name).write_bytes((ROOT / name).read_bytes())
    shutil.copytree(ROOT / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    models = sorted((ROOT / "checkpoints").glob("face*"))  # the shipped models
    assert [m.name for m in models] == sorted(storage.SHIPPED_MODELS)
    for model in models:
        shutil.copytree(model, source / "checkpoints" / model.name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0].removesuffix(".py") for name in names if ".dist-info" not in name and ".data/" not in name}
    assert top == set(DESIGN) | set(SCRIPTS) | {PACKAGE}
    installed = {name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
                 for name in names if name.endswith(".py")}
    assert needed_modules() <= installed
    static = {f"{PACKAGE}/serving/static/{path.name}" for path in (ROOT / PACKAGE / "serving" / "static").iterdir()}
    assert static and static <= set(names)
    data = {name.split(".data/data/", 1)[1] for name in names if ".data/data/" in name}
    shipped = {f"share/dcgan-completion-tf2/{path.relative_to(ROOT / 'checkpoints').as_posix()}"
               for model in models for path in model.rglob("*") if path.is_file()}
    assert shipped <= data  # where storage.shipped_model_dir() looks in an installed wheel
