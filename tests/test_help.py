"""Every command has a help page with the sections step's help has, its examples are real
invocations that parse, and the help renders in step's layout: `-h`, `step help` and the
Markdown export agree.

The command list is walked from the click tree, so commands added later are checked too."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from stepca.plugins import Plugins
from stepca.testing.process import run_step
from stepca_cli import helppage as helpmod
from stepca_cli.main import cli


def _builtin(command: click.Command) -> bool:
    # plugins' commands (added by main() through a hook) ship their own docs
    callback = command.callback
    return callback is None or callback.__module__.startswith("stepca_cli")


COMMANDS = {" ".join(words): command for words, command in helpmod.walk(cli)
            if _builtin(command)}


@pytest.fixture
def env(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEP")}
    return {**base, "STEPPATH": str(tmp_path / "step")}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    # examples are parsed like real runs: keep the user's defaults.json and STEP_* out of it
    for name in list(os.environ):
        if name.startswith("STEP"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STEPPATH", str(tmp_path / "step"))


def _page(path: str) -> dict[str, str]:
    words = path.split()
    file = helpmod.page_path(words)
    assert file.is_file(), f"'{path}' has no help page: write {file}"
    return helpmod.parse_page(file.read_text(encoding="utf-8"))


def test_the_walk_finds_the_commands():
    # guards the parametrized tests below against silently checking nothing
    assert {"step", "step ca", "step ca health", "step ca token", "step help",
            "step completion", "step crypto jwt inspect"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_page_has_the_required_sections(path):
    command = COMMANDS[path]
    page = _page(path)
    required = ["DESCRIPTION"]
    if not isinstance(command, click.Group):
        required += ["EXIT CODES", "EXAMPLES"]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        required.append("POSITIONAL ARGUMENTS")
    missing = [title for title in required if not page.get(title, "").strip()]
    assert not missing, f"the page of '{path}' lacks {', '.join(missing)}"
    for argument in arguments:
        # `<crt-file|url>` may be documented as a whole or by any of its alternatives
        names = helpmod.argument_name(argument).split("|")
        text = page["POSITIONAL ARGUMENTS"].lower().replace("_", "-")
        assert any(n in text for n in names), \
            f"POSITIONAL ARGUMENTS of '{path}' does not describe <{'|'.join(names)}>"


# -- examples --------------------------------------------------------------------------------------

def _substitutions(line: str) -> tuple[str, list[str]]:
    """``line`` with each ``$(...)`` (innermost first) and backquote replaced by a placeholder
    word, and the substituted commands."""
    inner: list[str] = []
    pattern = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
    while True:
        match = pattern.search(line)
        if not match:
            return line, inner
        inner.append(match.group(1) if match.group(1) is not None else match.group(2))
        line = line[:match.start()] + "SUBSTITUTED" + line[match.end():]


def _commands_of(line: str) -> list[list[str]]:
    """The ``step …`` commands of one shell line, without pipes, redirections, ``&&``..."""
    line, inner = _substitutions(line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
            continue
        if token and all(c in ";&|<>()" for c in token):
            if token in {"|", "||", "&&", ";", "&", "(", ")"}:
                segments.append([])
            else:  # a redirection: drop its target, and the fd number written against it
                skip_next = True
                current = segments[-1]
                if current and current[-1].isdigit() and re.search(
                        rf"(?<!\S){current[-1]}{re.escape(token)}", line):
                    current.pop()
            continue
        segments[-1].append(token)
    found = [s for s in segments if s and s[0] == "step"]
    for text in inner:
        found += _commands_of(text)
    return found


def _examples(section: str) -> list[str]:
    """``$ step …`` lines of the code blocks (continuations joined); pipelines that start
    elsewhere are checked too when one of their commands is ``step``."""
    lines, fenced, pending = [], False, ""
    for raw in section.splitlines():
        if raw.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        text = raw.strip()
        if pending:
            text = pending + " " + text
            pending = ""
        elif not text.startswith("$ "):
            continue
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        lines.append(text[2:])
    return lines


PLUGINS = Plugins.load()


def _parse(argv: list[str]) -> None:
    """Resolve ``step a b …`` in the click tree and let click parse the rest strictly."""
    command: click.Command = cli
    name, args = "step", argv[1:]
    parent: click.Context | None = None
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        # the root context holds the plugins, as `step` runs: they declare some flags
        parent = click.Context(command, info_name=name, parent=parent,
                               obj=None if parent else PLUGINS)
        name = args.pop(0)
        command = command.commands[name]
    try:
        ctx = command.make_context(name, list(args), parent=parent, resilient_parsing=False)
        ctx.close()
    except click.exceptions.Exit:
        pass  # --help, --version


EXAMPLE_PAGES = [p for p in sorted(COMMANDS) if helpmod.page_path(p.split()).is_file()]


@pytest.mark.parametrize("path", EXAMPLE_PAGES)
def test_examples_parse(path, clean_env):
    page = _page(path)
    failures = []
    checked = 0
    for title in ("EXAMPLES", "DESCRIPTION", "SECURITY CONSIDERATIONS", "NOTES"):
        for line in _examples(page.get(title, "")):
            for argv in _commands_of(line):
                checked += 1
                try:
                    _parse(argv)
                except click.ClickException as exc:
                    failures.append(f"$ {shlex.join(argv)}\n    {exc.format_message()}")
    assert not failures, f"examples of '{path}' do not parse:\n" + "\n".join(failures)
    if not isinstance(COMMANDS[path], click.Group):
        assert checked, f"the EXAMPLES of '{path}' hold no '$ step …' invocation"


def test_example_extraction():
    section = "```\n$ step ca token a \\\n    --san b | step crypto jwt inspect --insecure\n" \
              "$ X=$(step path --base) step ca health 2>/dev/null > out\nnot a command\n```"
    found = [argv for line in _examples(section) for argv in _commands_of(line)]
    assert found == [["step", "ca", "token", "a", "--san", "b"],
                     ["step", "crypto", "jwt", "inspect", "--insecure"],
                     ["step", "path", "--base"]]
    with pytest.raises(click.ClickException):
        _parse(["step", "ca", "health", "--no-such-flag"])
    with pytest.raises(click.ClickException):
        _parse(["step", "ca", "token"])  # <subject> is required


# -- rendering -------------------------------------------------------------------------------------

def _titles(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and line == line.upper()
            and re.fullmatch(r"[A-Z][A-Z ]+", line)]


def test_ca_health_help_layout(env):
    out = run_step("ca", "health", "--help", env=env).stdout
    assert "\x1b[" not in out  # no terminal, no bold
    assert _titles(out) == ["NAME", "USAGE", "DESCRIPTION", "OPTIONS", "EXIT CODES",
                            "EXAMPLES"]
    lines = out.splitlines()
    assert lines[:2] == ["NAME", "step ca health -- get the status of the CA"]
    assert lines[3:5] == ["USAGE", "step ca health [--ca-url=URI] [--root=FILE] "
                                   "[--context=NAME]"]
    assert "--ca-url=URI" in lines and "    URI of the targeted Step Certificate Authority." \
        in lines
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)


def test_section_order_with_arguments_and_security():
    text = helpmod.render(COMMANDS["step ca token"], ["step", "ca", "token"], color=False)
    assert _titles(text) == ["NAME", "USAGE", "DESCRIPTION", "POSITIONAL ARGUMENTS", "OPTIONS",
                             "EXIT CODES", "EXAMPLES", "SECURITY CONSIDERATIONS"]


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_rendered_prose_fits_80_columns(path):
    text = helpmod.render(COMMANDS[path], path.split(), color=False)
    # only code lines (examples, indented 4) may run past 80 columns, as in step
    code = set()
    for _title, body in helpmod.build(COMMANDS[path], path.split()):
        for block in helpmod.parse_blocks(body):
            if block.kind == "code":
                code |= {"    " + line for line in block.lines}
    long = [line for line in text.splitlines() if len(line) > 80 and line not in code]
    assert not long, f"'{path} --help' has lines over 80 columns: {long}"


def test_bold_only_on_a_terminal():
    command, words = COMMANDS["step ca health"], ["step", "ca", "health"]
    assert helpmod.render(command, words, color=True).startswith("\x1b[1mNAME\x1b[0m")
    assert "\x1b[" not in helpmod.render(command, words, color=False)


def test_paragraphs_are_wrapped():
    text = "word " * 40
    lines = helpmod.render_blocks(text, color=False)
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    definition = helpmod.render_blocks("<term>\n:  " + text, color=False)
    assert definition[0] == "<term>" and all(line.startswith("    ")
                                             for line in definition[1:])


def test_step_help_equals_dash_h(env):
    by_help = run_step("help", "ca", "token", env=env).stdout
    by_flag = run_step("ca", "token", "--help", env=env).stdout
    assert by_help == by_flag
    assert by_help.startswith("NAME\nstep ca token -- ")
    assert run_step("ca", "token", "-h", env=env).stdout == by_flag


def test_step_help_for_groups_lists_commands():
    runner = CliRunner()
    result = runner.invoke(cli, ["help", "ca"], prog_name="step")
    assert result.exit_code == 0, result.output
    assert "COMMANDS" in result.output
    assert re.search(r"^    health +get the status of the CA$", result.output, re.MULTILINE)
    root = runner.invoke(cli, ["help"], prog_name="step")
    assert root.output.startswith("NAME\nstep -- ")
    assert runner.invoke(cli, ["--help"], prog_name="step").output == root.output


def test_step_help_unknown_command(env):
    result = run_step("help", "ca", "nope", env=env, check=False)
    assert result.returncode == 1
    assert "no help topic for 'step ca nope'" in result.stderr
    assert result.stdout == ""
    leaf = run_step("help", "ca", "health", "more", env=env, check=False)
    assert leaf.returncode == 1 and "has no subcommands" in leaf.stderr


def test_every_group_and_command_uses_the_layout():
    runner = CliRunner()
    for path in ("step crypto", "step certificate inspect", "step crl inspect", "step path"):
        result = runner.invoke(cli, [*path.split()[1:], "--help"], prog_name="step")
        assert result.exit_code == 0
        assert result.output.startswith(f"NAME\n{path} -- "), result.output


def test_markdown_export(env, tmp_path):
    target = tmp_path / "docs"
    run_step("help", "--markdown", str(target), env=env)
    expected = {helpmod.markdown_file(p.split()) for p in COMMANDS}
    written = {str(p.relative_to(target)) for p in target.rglob("*.md")}
    assert expected | {"index.md"} <= written
    health = (target / "ca" / "health.md").read_text()
    assert health.startswith("# step ca health\n")
    titles = re.findall(r"^## (.+)$", health, re.MULTILINE)
    assert titles == ["NAME", "USAGE", "DESCRIPTION", "OPTIONS", "EXIT CODES", "EXAMPLES"]
    assert "**--ca-url**=URI\n:  URI of the targeted" in health
    index = (target / "index.md").read_text()
    assert "[step ca health](ca/health.md)" in index
    ca = (target / "ca.md").read_text()
    assert "[**health**](ca/health.md)" in ca
    provisioner = (target / "ca" / "provisioner.md").read_text()
    assert "[**list**](provisioner/list.md)" in provisioner
    token = (target / "ca" / "token.md").read_text()
    assert "`<subject>`" in token  # placeholders survive Markdown viewers


def test_completion_scripts(env):
    bash = run_step("completion", "bash", env=env).stdout
    assert "_STEP_COMPLETE" in bash and "complete -o nosort -F _step_completion step" in bash
    for shell in ("zsh", "fish"):
        assert "_STEP_COMPLETE" in run_step("completion", shell, env=env).stdout
    assert run_step("completion", "tcsh", env=env, check=False).returncode != 0


def test_completion_answers_for_the_step_program(env):
    # what the bash script does on Tab: call `step` with _STEP_COMPLETE set
    answer = run_step(env={**env, "_STEP_COMPLETE": "bash_complete",
                           "COMP_WORDS": "step ca he", "COMP_CWORD": "2"})
    assert answer.stdout.split() == ["plain,health"]
    flags = run_step(env={**env, "_STEP_COMPLETE": "bash_complete",
                          "COMP_WORDS": "step ca health --ca", "COMP_CWORD": "3"})
    assert "plain,--ca-url" in flags.stdout.split()


def test_pages_ship_in_the_package():
    assert helpmod.HELPDOCS == Path(helpmod.__file__).parent / "helpdocs"
    assert (helpmod.HELPDOCS / "ca" / "health.md").is_file()


def test_a_command_without_a_page_falls_back_to_its_docstring():
    # e.g. a plugin's command: still step's layout, with what click knows
    @click.command()
    @click.argument("thing")
    @click.option("--colour", type=click.Choice(["red", "blue"]), help="The colour.")
    def paint(thing: str, colour: str | None) -> None:
        """paint a thing

        Longer words about painting."""

    text = helpmod.render(paint, ["step", "paint"], color=False)
    assert _titles(text) == ["NAME", "USAGE", "DESCRIPTION", "OPTIONS"]
    assert "step paint -- paint a thing" in text
    assert "step paint <thing> [--colour=COLOUR]" in text
    assert "Longer words about painting." in text
    assert "    The colour. Options are: red, blue." in text
