"""step's "help that is actually helpful": every command's help is built from click's metadata
(NAME, USAGE, OPTIONS, COMMANDS) plus a Markdown page in ``helpdocs/`` (DESCRIPTION, POSITIONAL
ARGUMENTS, EXIT CODES, EXAMPLES, SECURITY CONSIDERATIONS, ...), rendered for an 80-column terminal
by ``-h/--help`` and ``step help``, or exported as Markdown by ``step help --markdown DIR``.

The page for ``step a b c`` is ``helpdocs/a/b/c.md`` (the group ``step a`` is ``helpdocs/a.md``,
``step`` itself is ``helpdocs/step.md``).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from stepca_cli.errors import StepError
from stepca_cli.help import PROG
from stepca_cli.lazy import LazyCommands

HELPDOCS = Path(__file__).resolve().parent / "helpdocs"
WIDTH = 80
INDENT = 4

# step's rendered order (cli-utils/usage moves OPTIONS after POSITIONAL ARGUMENTS); sections a
# page holds that are not listed here (NOTES, STANDARDS, ...) follow in the page's own order.
ORDER = ["NAME", "USAGE", "DESCRIPTION", "COMMANDS", "POSITIONAL ARGUMENTS", "OPTIONS",
         "EXIT CODES", "EXAMPLES", "SECURITY CONSIDERATIONS"]
PAGE_SECTIONS = {"DESCRIPTION", "POSITIONAL ARGUMENTS", "EXIT CODES", "EXAMPLES",
                 "SECURITY CONSIDERATIONS"}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KEEP = "\x00"  # a space that wrap() must not break at
_HEADING = re.compile(r"^##\s+(.+?)\s*#*\s*$")


# -- the click tree --------------------------------------------------------------------------------

def walk(command: click.Command, words: Sequence[str] = (PROG,)
         ) -> Iterator[tuple[list[str], click.Command]]:
    """Every visible command under ``command`` (itself first), depth first, by name."""
    yield list(words), command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                yield from walk(sub, [*words, name])


def resolve(root: click.Command, names: Sequence[str]) -> tuple[list[str], click.Command]:
    """The command at ``step <names…>``; an unknown name is a StepError naming it."""
    words, command = [PROG], root
    for name in names:
        sub = command.commands.get(name) if isinstance(command, click.Group) else None
        if sub is None:
            where = " ".join(words)
            if isinstance(command, click.Group):
                raise StepError(f"no help topic for '{' '.join([*words, name])}': '{where}' has "
                                f"no command '{name}' (see '{where} --help')")
            raise StepError(f"no help topic for '{' '.join([*words, name])}': '{where}' has no "
                            "subcommands")
        words.append(name)
        command = sub
    return words, command


def page_path(words: Sequence[str]) -> Path:
    if len(words) <= 1:
        return HELPDOCS / f"{PROG}.md"
    return HELPDOCS.joinpath(*words[1:-1], f"{words[-1]}.md")


def parse_page(text: str) -> dict[str, str]:
    """``## TITLE`` sections of a page, in page order (text before the first one is ignored)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            current = sections.setdefault(match.group(1).strip().upper(), [])
        elif current is not None:
            current.append(line)
    return {title: "\n".join(lines).strip("\n") for title, lines in sections.items()}


def read_page(words: Sequence[str]) -> dict[str, str] | None:
    try:
        return parse_page(page_path(words).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


# -- the document, as Markdown sections ------------------------------------------------------------

def short_help(command: click.Command) -> str:
    return command.get_short_help_str(limit=10_000).rstrip(".")


def listing(group: click.Group) -> list[tuple[str, str]]:
    """``(name, one-line help)`` of the visible subcommands, by name; a subcommand that is not
    imported yet is listed with the help its lazy entry gives, and stays unimported."""
    rows = []
    lazy = group.commands if isinstance(group.commands, LazyCommands) else None
    for name in sorted(group.commands):
        text = lazy.short_help(name) if lazy is not None else None
        if text is None:
            sub = group.commands[name]
            if sub.hidden:
                continue
            text = short_help(sub)
        rows.append((name, text))
    return rows


def _long_names(param: click.Parameter) -> list[str]:
    return [o for o in getattr(param, "opts", []) if o.startswith("--")]


def option_placeholder(option: click.Option) -> str:
    if option.metavar:
        return option.metavar
    names = _long_names(option) or option.opts
    return names[0].lstrip("-").upper()


def argument_name(argument: click.Argument) -> str:
    """``<crt-file>`` style: step's placeholders are lower case in angle brackets."""
    raw = argument.metavar or argument.name or "arg"
    return raw.strip("[]").rstrip(".").lower().replace("_", "-")


def _is_flag(option: click.Option) -> bool:
    return bool(option.is_flag or option.count)


def _visible_options(command: click.Command) -> list[click.Option]:
    help_names = {"--help", "-h"}
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden
            and not help_names & set(p.opts)]


def _arguments(command: click.Command) -> list[click.Argument]:
    return [p for p in command.params if isinstance(p, click.Argument)]


def _with_value(name: str, option: click.Option) -> str:
    if _is_flag(option):
        return f"**{name}**"
    placeholder = option_placeholder(option)
    if placeholder.startswith("[="):  # an optional value, e.g. --mtls[=BOOL]
        return f"**{name}**{placeholder}"
    return f"**{name}**={placeholder}"


def usage_line(command: click.Command, words: Sequence[str]) -> str:
    parts = [f"**{' '.join(words)}**"]
    if isinstance(command, click.Group):
        for option in _visible_options(command):
            parts.append(f"[{_usage_option(option)}]")
        parts.append("<command> [arguments...]")
        return " ".join(parts)
    for argument in _arguments(command):
        name = f"<{argument_name(argument)}>"
        if argument.nargs == -1:
            name += "..."
        parts.append(name if argument.required else f"[{name}]")
    for option in _visible_options(command):
        piece = _usage_option(option)
        piece = piece if option.required else f"[{piece}]"
        parts.append(piece + ("..." if option.multiple else ""))
    return " ".join(parts)


def _usage_option(option: click.Option) -> str:
    names = _long_names(option) or option.opts
    return _with_value(names[0], option).replace("**", "")


def option_entry(option: click.Option) -> tuple[str, str]:
    """``(term, text)`` of one OPTIONS definition: aliases joined, each with its placeholder."""
    names = [*option.opts, *option.secondary_opts]
    term = ", ".join(_with_value(n, option) if n not in option.secondary_opts else f"**{n}**"
                     for n in names)
    text = (option.help or "").strip()
    if isinstance(option.type, click.Choice):
        choices = [str(c) for c in option.type.choices]
        if not all(c in text for c in choices):
            text = f"{text} Options are: {', '.join(choices)}.".strip()
    if option.multiple and "repeat" not in text.lower():
        text = f"{text} Use the flag more than once for several values.".strip()
    return term, text or "(undocumented)"


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def build(command: click.Command, words: Sequence[str], *, links: bool = False
          ) -> list[tuple[str, str]]:
    """The help of ``command`` as ``(TITLE, markdown)`` sections in step's order. ``links``
    makes the COMMANDS table point at the exported Markdown files."""
    page = read_page(words) or {}
    made: dict[str, str] = {
        "NAME": f"**{' '.join(words)}** -- {short_help(command)}",
        "USAGE": usage_line(command, words),
    }
    if "DESCRIPTION" not in page and command.help:
        # no page (e.g. a plugin's command): the docstring is the best description there is
        made["DESCRIPTION"] = textwrap.dedent(command.help).strip()
    if isinstance(command, click.Group):
        rows = []
        for name, text in listing(command):
            label = f"**{name}**"
            if links:
                label = f"[{label}]({link(words, [*words, name])})"
            rows.append(f"| {label} | {_escape_cell(text)} |")
        if rows:
            made["COMMANDS"] = "| Name | Usage |\n|---|---|\n" + "\n".join(rows)
    options = [option_entry(o) for o in _visible_options(command)]
    if options:
        made["OPTIONS"] = "\n\n".join(f"{term}\n:  {text}" for term, text in options)
    merged = {**page, **made}
    ordered = [title for title in ORDER if title in merged]
    ordered += [title for title in page if title not in ORDER]
    return [(title, merged[title]) for title in ordered]


# -- Markdown export -------------------------------------------------------------------------------

def markdown_file(words: Sequence[str]) -> str:
    """Where ``step <words…>`` goes in an exported tree (posix, relative to the tree)."""
    return "/".join(words[1:]) + ".md" if len(words) > 1 else f"{PROG}.md"


def link(source: Sequence[str], target: Sequence[str]) -> str:
    here = os.path.dirname(markdown_file(source)) or "."
    return os.path.relpath(markdown_file(target), here).replace(os.sep, "/")


_PLACEHOLDER = re.compile(r"(?<!`)<([A-Za-z][^<>\s`]*)>(?!`)")


def markdownify(text: str) -> str:
    """Make ``<placeholder>`` survive Markdown viewers (they would take it for HTML)."""
    out: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        # whole runs of prose at once: a code span may continue on the next line
        pieces = "\n".join(prose).split("`")
        if prose:
            out.append("`".join(_PLACEHOLDER.sub(r"`<\1>`", p) if i % 2 == 0 else p
                                for i, p in enumerate(pieces)))
        prose.clear()

    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            flush()
            fenced = not fenced
            out.append(line)
        elif fenced:
            out.append(line)
        else:
            prose.append(line)
    flush()
    return "\n".join(out)


def to_markdown(command: click.Command, words: Sequence[str]) -> str:
    body = [f"# {' '.join(words)}", ""]
    for title, text in build(command, words, links=True):
        if title == "USAGE":
            text = "`" + text.replace("**", "") + "`"
        body += [f"## {title}", "", markdownify(text), ""]
    return "\n".join(body)


def export_markdown(root: click.Command, words: Sequence[str], target: Path) -> list[Path]:
    """One file per command under ``target`` plus ``index.md`` listing them all."""
    written = []
    index = ["# step command reference", "", "| Command | Usage |", "|---|---|"]
    for sub_words, command in walk(root, words):
        path = target / markdown_file(sub_words)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(command, sub_words), encoding="utf-8")
        written.append(path)
        index.append(f"| [{' '.join(sub_words)}]({markdown_file(sub_words)}) | "
                     f"{_escape_cell(short_help(command))} |")
    target.mkdir(parents=True, exist_ok=True)
    (target / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    written.append(target / "index.md")
    return written


# -- terminal rendering ----------------------------------------------------------------------------

@dataclass
class Block:
    kind: str  # paragraph | code | definition | item | table | heading
    text: str = ""
    lines: list[str] = field(default_factory=list)
    term: str = ""
    level: int = 0
    marker: str = ""


_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$")


def parse_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0

    def starts_block(j: int) -> bool:
        line = lines[j]
        return (not line.strip() or line.lstrip().startswith(("```", "|", "#"))
                or bool(_ITEM.match(line)) or line.startswith(":")
                or (j + 1 < len(lines) and lines[j + 1].startswith(":")))

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            code, i = [], i + 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            blocks.append(Block("code", lines=textwrap.dedent("\n".join(code)).splitlines()))
            i += 1
        elif line.startswith("    "):
            code = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                code.append(lines[i])
                i += 1
            blocks.append(Block("code", lines=textwrap.dedent("\n".join(code)).strip("\n")
                                .splitlines()))
        elif stripped.startswith("#"):
            blocks.append(Block("heading", text=stripped.lstrip("#").strip()))
            i += 1
        elif stripped.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = re.split(r"(?<!\\)\|", lines[i].strip().strip("|"))
                cells = [c.strip().replace("\\|", "|") for c in cells]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append("\t".join(cells))
                i += 1
            blocks.append(Block("table", lines=rows))
        elif i + 1 < len(lines) and lines[i + 1].startswith(":"):
            term, i = stripped, i + 1
            text = [lines[i][1:].strip()]
            i += 1
            while i < len(lines) and lines[i].strip() and not starts_block(i):
                text.append(lines[i].strip())
                i += 1
            blocks.append(Block("definition", term=term, text=" ".join(text)))
        elif match := _ITEM.match(line):
            text, i = [match.group(3)], i + 1
            while (i < len(lines) and lines[i].strip() and not _ITEM.match(lines[i])
                   and lines[i].startswith(" ")):
                text.append(lines[i].strip())
                i += 1
            blocks.append(Block("item", text=" ".join(text), level=len(match.group(1)) // 2,
                                marker=match.group(2)))
        else:
            text = []
            while i < len(lines) and (not text or not starts_block(i)):
                text.append(lines[i].strip())
                i += 1
            blocks.append(Block("paragraph", text=" ".join(text)))
    return blocks


def _bold(text: str, color: bool) -> str:
    return click.style(text, bold=True) if color else text


def inline(text: str, color: bool) -> str:
    """Markdown spans to terminal text: code spans and links lose their markup, ``**x**`` is
    bold on a terminal."""
    pieces = text.split("`")
    out = []
    for index, piece in enumerate(pieces):
        if index % 2:
            out.append(piece.replace(" ", _KEEP))  # a code span is never split over lines
            continue
        piece = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", piece)
        piece = re.sub(r"\*\*(.+?)\*\*", lambda m: _bold(m.group(1), color), piece)
        out.append(piece.replace("\\*", "*").replace("\\_", "_"))
    return "".join(out)


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def wrap(text: str, indent: int = 0, hanging: int | None = None, width: int = WIDTH
         ) -> list[str]:
    """Greedy word wrap that measures text without its ANSI codes; a word longer than the line
    (a URL, a token) stays whole."""
    first, rest = " " * indent, " " * (indent if hanging is None else hanging)
    lines: list[str] = []
    current, length = first, len(first)
    fresh = True
    for word in text.split():
        size = visible_len(word)
        if not fresh and length + 1 + size > width:
            lines.append(current)
            current, length, fresh = rest, len(rest), True
        if fresh:
            current += word
            length += size
            fresh = False
        else:
            current += " " + word
            length += 1 + size
    lines.append(current)
    return [line.rstrip().replace(_KEEP, " ") for line in lines]


def _table(rows: list[str], indent: int, color: bool) -> list[str]:
    cells = [[inline(c, color) for c in row.split("\t")] for row in rows]
    if cells and [_ANSI.sub("", c) for c in cells[0]] == ["Name", "Usage"]:
        cells = cells[1:]  # the COMMANDS header reads better without its header row
    if not cells:
        return []
    columns = max(len(r) for r in cells)
    widths = [max((visible_len(r[c]) for r in cells if c < len(r)), default=0)
              for c in range(columns)]
    out = []
    for row in cells:
        start = indent
        line = " " * indent
        for c, cell in enumerate(row[:-1]):
            line += cell + " " * (widths[c] - visible_len(cell) + 3)
            start += widths[c] + 3
        last = row[-1]
        if start > WIDTH - 20:  # too little room: the last column goes on its own lines
            out.append(line.rstrip())
            out += wrap(last, indent + INDENT)
        else:
            wrapped = wrap(last, start)
            out.append(line + wrapped[0].lstrip())
            out += wrapped[1:]
    return out


def render_blocks(text: str, color: bool) -> list[str]:
    out: list[str] = []
    previous = ""
    for block in parse_blocks(text):
        if out and not (block.kind == previous == "item"):
            out.append("")
        previous = block.kind
        if block.kind == "paragraph":
            out += wrap(inline(block.text, color))
        elif block.kind == "heading":
            out.append(_bold(inline(block.text, color), color))
        elif block.kind == "code":
            out += [(" " * INDENT + line).rstrip() for line in block.lines]
        elif block.kind == "definition":
            out += wrap(inline(block.term, color))
            out += wrap(inline(block.text, color), INDENT)
        elif block.kind == "item":
            marker = block.marker if block.marker[0].isdigit() else "*"
            indent = 2 + INDENT * block.level
            out += wrap(f"{marker} {inline(block.text, color)}", indent,
                        indent + len(marker) + 1)
        elif block.kind == "table":
            out += _table(block.lines, INDENT, color)
    return out


def use_color() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def render(command: click.Command, words: Sequence[str], color: bool | None = None) -> str:
    """The terminal help of ``step <words…>``: headings, then bodies wrapped at 80 columns."""
    color = use_color() if color is None else color
    out: list[str] = []
    for title, text in build(command, words):
        if out:
            out.append("")
        out.append(_bold(title, color))
        if title == "USAGE":
            # wrapped lines of a long synopsis line up under the first argument
            out += wrap(inline(text, color), 0, len(" ".join(words)) + 1)
        else:
            out += render_blocks(text, color)
    return "\n".join(out)
