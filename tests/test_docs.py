"""The docs run as written: every command they show parses, every image and link resolves.

Commands come from the code blocks of ``README.md`` and ``docs/*.md``: fenced blocks labelled
``sh``, ``bash``, ``shell``, ``console`` or nothing, and indented blocks. ``$ `` prompts (in a
``console`` block only the prompted lines are commands, the rest is output), ``\\`` line
continuations, ``VAR=value`` prefixes, ``;`` / ``&&`` / ``|`` lists, ``for ...; do ...; done``
loops and heredoc bodies are read as a shell would read them. Nothing is run:

- ``kfw ...`` (also ``.venv/bin/kfw`` and ``python -m kfw``) goes through the real click
  command tree with every callback removed, so an unknown option, a missing argument, an
  unknown command or a value of the wrong type fails exactly as it would at the prompt;
- ``python SCRIPT.py`` and ``python -m MODULE`` must name a file of the repository (or one the
  same page writes with ``cat > FILE``), and every ``--option`` must be one its argparse
  parser declares;
- ``make TARGET VAR=value`` must name targets and variables of the Makefile.

A literal ``...`` is never an argument that runs. Other programs (``wandb``, ``cat``, ``cd``)
are left alone.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer

from kfw.cli.app import app

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console", "zsh"}
# what the pages held when this test was written (58 kfw, 20 python, 2 make): floors, so that
# an extraction that silently finds nothing cannot pass
MIN_COMMANDS = {"kfw": 50, "python": 10, "make": 2}
PLACEHOLDERS = {"...", "…"}
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&"}
REDIRECTIONS = {"<", ">", ">>", "<<", "<<-", "<<<", ">&", "<&", "&>", "&>>", ">|"}
KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "time", "!", "{", "}"}


@dataclass(frozen=True)
class Command:
    """One simple command of a page: its program's kind, and what follows the program."""

    page: Path
    line: int
    kind: str  # kfw | python | make | other
    args: tuple[str, ...]
    target: str = ""  # python: the script or module
    written: frozenset[str] = field(default=frozenset())  # files the page writes (cat > FILE)
    nth: int = 1  # the second command of a line (kfw a && kfw b) is FILE:LINE.2

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}" + (
            f".{self.nth}" if self.nth > 1 else ""
        )

    def __str__(self) -> str:
        return " ".join(w for w in (self.kind, self.target, *self.args) if w)


# ---------------------------------------------------------------------------------------------
# extraction


def code_blocks(text: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """(language, [(line number, line)]) for every fenced and indented code block of a page."""
    lines = text.splitlines()
    i, after_blank = 0, True
    while i < len(lines):
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if fence:
            indent, marker, language = fence.groups()
            body, i = [], i + 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append((i + 1, lines[i].removeprefix(indent)))
                i += 1
            yield language.lower(), body
            i, after_blank = i + 1, False
        elif after_blank and lines[i].startswith("    ") and lines[i].strip():
            body = []  # an indented block: up to the first line that is neither indented nor blank
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append((i + 1, lines[i][4:]))
                i += 1
            yield "", body
            after_blank = not lines[i - 1].strip()
        else:
            after_blank = not lines[i].strip()
            i += 1


def shell_lines(language: str, body: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """The command lines of a block, continuations joined, without output or heredoc bodies."""
    heredoc: str | None = None
    pending: tuple[int, str] | None = None  # a command continued with a backslash
    for number, raw in body:
        if heredoc is not None:
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        if pending is not None:
            start, line = pending[0], f"{pending[1]} {raw.strip().removeprefix('> ')}"
        elif language == "console":
            if not raw.startswith("$ "):
                continue  # output
            start, line = number, raw[2:]
        else:
            start, line = number, raw
        if line.rstrip().endswith("\\"):
            pending = (start, line.rstrip()[:-1])
            continue
        pending = None
        if found := re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line):
            heredoc = found.group(1)
        yield start, line


def simple_commands(line: str) -> tuple[list[list[str]], set[str]]:
    """The simple commands of a shell line (words, redirections dropped), and files it writes."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: not a shell line (prose in a text block)
        return [], set()
    commands, words, written, redirect = [], [], set(), None
    for token in tokens:
        if redirect is not None:
            if redirect in {">", ">>", ">|"}:
                written.add(token)
            redirect = None
        elif token in REDIRECTIONS:
            redirect = token
        elif token in OPERATORS:
            commands.append(words)
            words = []
        else:
            words.append(token)
    return [c for c in [*commands, words] if c], written


def classify(words: list[str]) -> tuple[str, str, list[str]] | None:
    """(kind, target, args) of a simple command, or None when it runs no program."""
    while words and words[0] in KEYWORDS:
        words = words[1:]
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words = words[1:]  # VAR=value prefixes
    if not words or words[0] in {"for", "case", "done", "fi", "esac"}:
        return None  # a loop's or a case's head
    program, args = Path(words[0]).name, words[1:]
    if words[0].endswith("/"):
        return "other", words[0], args  # a folder: a line of a tree, not a command
    if program == "kfw":
        return "kfw", "", args
    if program == "make":
        return "make", "", args
    if re.fullmatch(r"python(3(\.\d+)?)?", program) and args:
        if args[:2] == ["-m", "kfw"]:
            return "kfw", "", args[2:]
        if args[0] == "-m" and len(args) > 1:
            return "python", args[1], args[2:]
        if args[0].endswith(".py"):
            return "python", args[0], args[1:]
    return "other", program, args


def page_commands(page: Path) -> list[Command]:
    """Every simple command in the shell blocks of ``page``."""
    found, written = [], set()
    for language, body in code_blocks(page.read_text()):
        if language not in SHELL_BLOCKS:
            continue
        for number, line in shell_lines(language, body):
            commands, files = simple_commands(line)
            kinds = [k for k in map(classify, commands) if k is not None]
            if not language and (not kinds or kinds[0][0] == "other"):
                continue  # an unlabelled block holds text too: a command starts with a program
            written |= files
            found += [(number, n, kind) for n, kind in enumerate(kinds, 1)]
    return [
        Command(page, number, kind, tuple(args), target, frozenset(written), n)
        for number, n, (kind, target, args) in found
    ]


COMMANDS = [c for page in PAGES for c in page_commands(page)]


def of_kind(kind: str) -> list[Command]:
    return [c for c in COMMANDS if c.kind == kind]


# ---------------------------------------------------------------------------------------------
# the checks


@functools.cache
def kfw_cli() -> Any:
    """kfw's click command tree with every callback removed: parsing only, nothing runs.

    A path option that must exist (``exists=True``) takes any path here: the files a page
    names (``original.csv``, ``DIR``) are the reader's, not the repository's.
    """
    root = typer.main.get_command(app)

    def strip(command: Any) -> None:
        command.callback = None
        for param in command.params:
            accept_any_path(param)
        for sub in getattr(command, "commands", {}).values():
            strip(sub)

    strip(root)
    return root


def accept_any_path(param: Any) -> None:
    """Let a path parameter that must exist take any path, on copies: the real CLI keeps its
    checks. Click keeps ``exists`` on the parameter's type; typer's own coercion (typer 0.2x)
    on its descriptor's parameter info, shared with the ``typer.Option`` of the source."""
    kind = getattr(param, "type", None)
    if getattr(kind, "exists", False):
        param.type = copy.copy(kind)
        param.type.exists = False
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and getattr(descriptor.parameter_info, "exists", False):
        info = copy.copy(descriptor.parameter_info)
        info.exists = False
        param.type_descriptor = dataclasses.replace(descriptor, parameter_info=info)
        param._runtime_param = None  # typer builds the coercion from the descriptor, lazily


def kfw_problem(args: list[str] | tuple[str, ...]) -> str | None:
    """Why ``kfw ARGS`` would be refused before it ran, or None when it parses."""
    if placeholders := [a for a in args if a in PLACEHOLDERS]:
        return f"{placeholders[0]!r} is a placeholder, not an argument"
    try:
        code = kfw_cli().main(list(args), prog_name="kfw", standalone_mode=False)
    except typer.TyperException as e:  # typer's click: ClickException and UsageError
        return f"{type(e).__name__}: {e.format_message()}"
    return None if code in (None, 0) else f"exit code {code}"


@functools.cache
def argparse_options(script: Path) -> frozenset[str]:
    """The option strings a script's argparse parser declares (``add_argument`` calls)."""
    tree = ast.parse(script.read_text())
    return frozenset(
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and str(arg.value).startswith("-")
    ) | {"-h", "--help"}


def python_problem(command: Command) -> str | None:
    """Why ``python SCRIPT ARGS`` / ``python -m MODULE ARGS`` would be refused, or None."""
    if placeholders := [a for a in command.args if a in PLACEHOLDERS]:
        return f"{placeholders[0]!r} is a placeholder, not an argument"
    target = command.target
    if target.endswith(".py"):
        script = REPO / target.removeprefix("./")
    else:
        base = REPO / target.replace(".", "/")
        script = base / "__main__.py" if base.is_dir() else base.with_suffix(".py")
    if not script.is_file():
        return None if target in command.written else f"{target}: no such file in the repository"
    declared = argparse_options(script)
    unknown = [
        a.split("=")[0]
        for a in command.args
        if a.startswith("--") and a.split("=")[0] not in declared
    ]
    return f"{target} declares no {', '.join(unknown)}" if unknown else None


@functools.cache
def makefile() -> tuple[frozenset[str], frozenset[str]]:
    """The Makefile's targets and variables."""
    text = (REPO / "Makefile").read_text()
    targets = re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M)
    variables = re.findall(r"^([A-Za-z_]\w*)\s*[?:+]?=", text, re.M)
    return frozenset(targets), frozenset(variables) | set(re.findall(r"\$\((\w+)\)", text))


def make_problem(args: list[str] | tuple[str, ...]) -> str | None:
    targets, variables = makefile()
    for arg in args:
        if "=" in arg and arg.split("=")[0] not in variables:
            return f"the Makefile uses no variable {arg.split('=')[0]}"
        if "=" not in arg and not arg.startswith("-") and arg not in targets:
            return f"the Makefile has no target {arg!r}"
    return None


@pytest.mark.parametrize("command", of_kind("kfw"), ids=lambda c: c.id)
def test_every_kfw_command_in_the_docs_parses(command: Command) -> None:
    problem = kfw_problem(command.args)
    assert problem is None, f"{command.id}: `{command}`: {problem}"


@pytest.mark.parametrize("command", of_kind("python"), ids=lambda c: c.id)
def test_every_python_command_in_the_docs_names_a_script_and_its_options(
    command: Command,
) -> None:
    problem = python_problem(command)
    assert problem is None, f"{command.id}: `{command}`: {problem}"


@pytest.mark.parametrize("command", of_kind("make"), ids=lambda c: c.id)
def test_every_make_command_in_the_docs_names_a_target(command: Command) -> None:
    problem = make_problem(command.args)
    assert problem is None, f"{command.id}: `{command}`: {problem}"


def test_the_pages_hold_the_commands_we_check() -> None:
    counts = {kind: len(of_kind(kind)) for kind in MIN_COMMANDS}
    assert all(counts[k] >= n for k, n in MIN_COMMANDS.items()), counts


def test_the_checker_refuses_what_the_cli_refuses() -> None:
    assert kfw_problem(["cv", "titanic"]) is None
    assert kfw_problem(["--home", "somewhere", "cv", "titanic", "--model", "lgbm"]) is None
    assert kfw_problem(["--help"]) is None
    assert kfw_problem(["cv", "titanic", "--extra-train", "the-readers-own.csv"]) is None
    assert "NoSuchOption" in kfw_problem(["cv", "titanic", "--no-such-option"])
    assert "MissingParameter" in kfw_problem(["cv"])  # the competition
    assert "BadParameter" in kfw_problem(["repro", "batchnorm", "--data", "D", "--seeds", "3x"])
    assert "No such command" in kfw_problem(["no-such-command"])
    assert "placeholder" in kfw_problem(["cv", "titanic", "..."])
    script = Command(REPO, 1, "python", ("--out", "d", "..."), "benchmarks/positions.py")
    assert "placeholder" in python_problem(script)
    script = Command(REPO, 1, "python", ("--no-such-option",), "scratch_models.demos.moons")
    assert "declares no --no-such-option" in python_problem(script)
    assert python_problem(Command(REPO, 1, "python", (), "benchmarks/absent.py"))
    assert make_problem(["cv", "COMP=titanic"]) is None
    assert make_problem(["no-such-target"]) and make_problem(["cv", "NO_SUCH_VAR=1"])


def test_the_extraction_reads_the_shell_forms_the_docs_use(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n"
        "$ export KFW_HOME=$(mktemp -d)\n"
        "$ KFW_THREADS=1 kfw cv titanic \\\n"
        ">   --model lgbm\n"
        "output line: kfw ignored\n"
        '$ for k in 0 1; do .venv/bin/kfw submit titanic --file p-$k.csv -m "a b"; done\n'
        "$ cat > probe.py <<'EOF'\n"
        "kfw inside a heredoc is not a command\n"
        "EOF\n"
        "$ python probe.py && make cv COMP=titanic  # a comment\n"
        "```\n"
        "\n"
        "```python\n"
        "kfw = 1\n"
        "```\n"
        "\n"
        "    python -m kfw runs titanic\n"
    )
    found = [(c.line, c.kind, c.target, c.args) for c in page_commands(page)]
    assert found == [
        (2, "other", "export", ("KFW_HOME=$",)),  # $( splits a command; only kfw's count
        (2, "other", "mktemp", ("-d",)),
        (3, "kfw", "", ("cv", "titanic", "--model", "lgbm")),
        (6, "kfw", "", ("submit", "titanic", "--file", "p-$k.csv", "-m", "a b")),
        (7, "other", "cat", ()),
        (10, "python", "probe.py", ()),
        (10, "make", "", ("cv", "COMP=titanic")),
        (17, "kfw", "", ("runs", "titanic")),
    ]
    assert python_problem(page_commands(page)[5]) is None  # the page wrote probe.py


# ---------------------------------------------------------------------------------------------
# images and links


def prose(text: str) -> str:
    """A page without its code blocks and inline code, where links are not links."""
    text = re.sub(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]+`", "", text)


def link_targets(page: Path) -> list[str]:
    """The local targets of a page's Markdown links and images (or an HTML page's src/href)."""
    text = page.read_text()
    if page.suffix == ".html":
        targets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", text)
    else:
        text = prose(text)
        targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
        targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, re.M)
    return [
        t.split("#")[0]
        for t in targets
        if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t)  # http:, mailto:, data:, an anchor
    ]


def linked_files(page: Path) -> set[Path]:
    return {(page.parent / t).resolve() for t in link_targets(page)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file(page: Path) -> None:
    missing = [t for t in link_targets(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_every_image_in_docs_img_is_shown_by_a_page() -> None:
    shown = set().union(*(linked_files(p) for p in [*PAGES, *DOCS.glob("*.html")]))
    images = sorted(p for p in (DOCS / "img").iterdir() if p.is_file())
    assert images
    unshown = [p.name for p in images if p.resolve() not in shown]
    assert not unshown, f"docs/img files no page shows: {unshown}"


def test_the_readme_links_every_write_up() -> None:
    linked = linked_files(REPO / "README.md")
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs the README does not link: {missing}"


def test_the_link_reader_sees_links_and_skips_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        'See [the guide](docs/guide.md#setup), ![a plot](img/a.png "title") and '
        "[the site](https://example.com).\n`[not](a-link.md)`\n```\n[nor](this.md)\n```\n"
        "[ref]: other.md\n"
    )
    assert link_targets(page) == ["docs/guide.md", "img/a.png", "other.md"]
