"""The docs stay honest: relative links and images resolve, every documented command of the project's
scripts uses only flags that the script accepts, and the README stays short.

The flags a script accepts are read from its own `--help` (run once per script, all scripts at once), so
the test does not depend on how a script builds its parser. A script named in the docs that does not
exist fails the test, except the few in `NOT_YET_WRITTEN`, which are skipped with a reason until they exist.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Prepared shell scripts whose commands are checked like the docs' (read as one code block).
SHELL_SCRIPTS = [ROOT / "bench" / "gpu_check.sh"]
README_MAX_LINES = 250
# Scripts the docs may describe before they are written: their commands are skipped while they are missing.
NOT_YET_WRITTEN = {"serve.py"}

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_TARGET = re.compile(r"<(?:img|a)\b[^>]*?\s(?:src|href)=[\"']([^\"']+)[\"']", re.I)
HTML_ID = re.compile(r"\s(?:id|name)=[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PYTHON = re.compile(r"(^|/)python[0-9.]*$")
SCRIPT = re.compile(r"^(?:\./)?((?:bench/|data/)?[A-Za-z0-9_-]+\.py)$")
HELP_FLAG = re.compile(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}


def rel(path: Path, root: Path = ROOT) -> str:
    return str(path.relative_to(root))


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[list[tuple[int, str]]]]:
    """(prose lines, fenced code blocks), each line with its 1-based number. A block fenced as
    ```text (a file tree, a program's output) is neither prose nor commands: it is left out."""
    prose, blocks, fence, block = [], [], None, []
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, block = match.group(1), []
                keep = line.strip()[len(fence):].strip() != "text"
            else:
                prose.append((number, line))
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                and not line.strip()[len(match.group(1)):].strip():
            if keep:
                blocks.append(block)
            fence = None
        else:
            block.append((number, line))
    if fence is not None and keep:
        blocks.append(block)
    return prose, blocks


@lru_cache(maxsize=None)
def parsed(path: Path):
    return split_markdown(path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    prose, _ = parsed(path)
    found, seen = set(), {}
    for _, line in prose:
        found.update(HTML_ID.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def link_targets(path: Path) -> list[tuple[int, str]]:
    """Every link and image target in a Markdown file's prose (code blocks and code spans left out)."""
    prose, _ = parsed(path)
    targets = []
    for number, line in prose:
        line = INLINE_CODE.sub(lambda m: "code", line)
        for pattern in (LINK, HTML_TARGET):
            targets += [(number, target) for target in pattern.findall(line)]
        match = REFERENCE.match(line)
        if match:
            targets.append((number, match.group(1)))
    return targets


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in link_targets(path):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http:, https:, mailto:, ...: not checked here
        file_part, _, anchor = target.partition("#")
        file_part = file_part.split("?")[0]
        where = f"{rel(path, root)}:{number}: {target}"
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{where}: {file_part} does not exist")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{where}: no heading or id #{anchor} in {rel(destination, root)}")
    return problems


def console_scripts() -> dict[str, str]:
    """setup.py's console scripts: `dcgan-train` -> `train_dcgan.py`."""
    text = (ROOT / "setup.py").read_text()
    return {name: f"{module}.py" for name, module in re.findall(r"[\"']([\w-]+)\s*=\s*(\w+):\w+[\"']", text)}


def logical_lines(block: list[tuple[int, str]]):
    """A code block's lines with `\\` continuations joined and a leading `$ ` prompt removed."""
    pending, start = "", None
    for number, line in block:
        if start is None:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + line).strip()
        pending, first, start = "", start, None
        if full.startswith("$ "):
            full = full[2:].strip()
        yield first, full
    if pending:
        yield start, pending.strip()


def tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: program output, not a command
        return line.split("#")[0].split()


def script_of(words: list[str], entry_points: dict[str, str]) -> tuple[str, list[str]] | None:
    """(script path, its arguments) if this simple command runs one of the project's scripts."""
    i = 0
    while i < len(words) and ENV_ASSIGNMENT.match(words[i]):
        i += 1
    if i < len(words) and PYTHON.search(words[i]):
        i += 1
        while i < len(words) and words[i].startswith("-"):
            if words[i] == "-m":
                return None  # python -m MODULE: not a script
            i += 1
    if i >= len(words):
        return None
    match = SCRIPT.match(words[i])
    if match:
        return match.group(1), words[i + 1:]
    if words[i] in entry_points:
        return entry_points[words[i]], words[i + 1:]
    return None


def commands_in(text: str, entry_points: dict[str, str]):
    """(line number, script, flags, command line) of every command in a Markdown text's code blocks
    that runs one of the project's scripts."""
    _, blocks = split_markdown(text)
    for block in blocks:
        for number, line in logical_lines(block):
            command = []
            for word in tokens(line) + [";"]:
                if word not in SHELL_OPERATORS:
                    command.append(word)
                    continue
                found = script_of(command, entry_points)
                if found:
                    script, args = found
                    flags = []
                    for arg in args:
                        if arg == "--":
                            break
                        if arg.startswith("--"):
                            flags.append(arg.split("=", 1)[0])
                    yield number, script, flags, line
                command = []


@lru_cache(maxsize=None)
def documented_commands() -> dict[str, list[tuple[str, int, list[str], str]]]:
    """script -> [(doc, line, flags, command)] over README.md and docs/*.md."""
    entry_points = console_scripts()
    found: dict[str, list] = {}
    for path in DOCS + SHELL_SCRIPTS:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".sh":  # one code block, its line numbers kept
            text = "```\n" + "\n".join(line.split("#")[0] for line in text.splitlines()) + "\n```"
            number_offset = -1
        else:
            number_offset = 0
        for number, script, flags, line in commands_in(text, entry_points):
            found.setdefault(script, []).append((rel(path), number + number_offset, flags, line))
    return found


def help_flags(script: str) -> frozenset[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"python {script} --help failed ({result.returncode}):\n{result.stderr[-2000:]}"
    return frozenset(HELP_FLAG.findall(result.stdout))


@pytest.fixture(scope="module")
def accepted_flags() -> dict[str, frozenset[str]]:
    """Each existing documented script's flags, from one `--help` run per script (run side by side)."""
    scripts = sorted(script for script in documented_commands() if (ROOT / script).is_file())
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(scripts, pool.map(help_flags, scripts)))


def test_readme_is_short():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; the reference belongs in docs/"


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_and_images_exist(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("script", sorted(documented_commands()))
def test_documented_commands_use_accepted_flags(script, accepted_flags):
    if not (ROOT / script).is_file():
        if script in NOT_YET_WRITTEN:
            pytest.skip(f"{script} is documented but not written yet")
        where = ", ".join(sorted({f"{doc}:{line}" for doc, line, _, _ in documented_commands()[script]}))
        pytest.fail(f"{script} is documented ({where}) but does not exist")
    accepted = accepted_flags[script]
    assert accepted, f"no --flags found in the output of python {script} --help"
    wrong = [f"{doc}:{line}: {flag} in: {command}"
             for doc, line, flags, command in documented_commands()[script]
             for flag in flags if flag not in accepted]
    assert wrong == [], f"flags that {script} does not accept:\n" + "\n".join(wrong)


def test_the_main_commands_are_documented():
    """The extraction finds the commands (so the flag test cannot pass by finding none)."""
    found = documented_commands()
    for script in ("complete.py", "train_dcgan.py", "align_faces.py", "convert_checkpoint.py",
                   "simple_distributions.py", "data/make_faces.py"):
        assert script in found, f"no command of {script} found in README.md or docs/*.md"
    readme = [script for script, uses in found.items() if any(doc == "README.md" for doc, *_ in uses)]
    assert {"complete.py", "train_dcgan.py", "align_faces.py"} <= set(readme)


def test_the_gpu_script_is_valid_bash_and_runs_every_benchmark():
    """bench/gpu_check.sh, the GPU run prepared without a GPU: bash parses it, and it runs each
    benchmark, the training and the completion (their flags: test_documented_commands_use_accepted_flags)."""
    script = ROOT / "bench" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    uses = {name for name, found in documented_commands().items() if any(doc == rel(script) for doc, *_ in found)}
    assert {"bench/bench_train.py", "bench/bench_complete.py", "bench/bench_one_image.py", "train_dcgan.py",
            "complete.py", "data/make_faces.py"} <= uses
    flags = {flag for found in documented_commands().values() for doc, _, command_flags, _ in found
             if doc == rel(script) for flag in command_flags}
    assert {"--xla", "--mixed_precision", "--batch_size", "--batchSize"} <= flags


def test_command_extraction():
    text = "\n".join([
        "Prose: python complete.py --notAFlag is not in a code block.",
        "```",
        "$ bench/eval_completion.py --images x \\",
        "    --maskType center   # a comment --ignored",
        "TF_CONFIG='{\"a\": 1}' \\",
        "    python train_dcgan.py --dataset d --epoch=3",
        "cp -r a b && python3 ./complete.py --nIter 5 -- --notAFlag; dcgan-train --seed 0",
        "python -m model convert SRC DST",
        "[dcgan] complete.py --seed ... (output, not a command)",
        "make test",
        "```",
    ])
    entry_points = {"dcgan-train": "train_dcgan.py"}
    found = [(number, script, flags) for number, script, flags, _ in commands_in(text, entry_points)]
    assert found == [(3, "bench/eval_completion.py", ["--images", "--maskType"]),
                     (5, "train_dcgan.py", ["--dataset", "--epoch"]),
                     (7, "complete.py", ["--nIter"]),
                     (7, "train_dcgan.py", ["--seed"])]


def test_link_checking(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    (tmp_path / "other.md").write_text("# The `complete.py` flags\n\n## Speed, and why\n")
    page = tmp_path / "page.md"
    page.write_text("\n".join([
        "# Top", "", "![a](images/a.png) ![b](images/missing.png) [c](other.md#the-completepy-flags)",
        "[d](other.md#speed-and-why) [e](other.md#nope) [f](#top) [g](https://example.com/x.md) `[h](gone.md)`",
        "```", "[i](gone.md)", "```"]))
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == ["images/missing.png: images/missing.png does not exist",
                                                      "other.md#nope: no heading or id #nope in other.md"]
