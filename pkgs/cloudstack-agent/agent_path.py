#!/usr/bin/env python3
"""Checks the CloudStack agent's PATH against the commands its scripts run.

The agent's PATH is data (path.toml beside this file: command = provider), read by the NixOS
module that builds the PATH and by this program, which the package runs at build time over the
scripts it installs (so at the packaged version):

  agent_path.py scripts --data path.toml --root $out/share   commands the scripts run that
                                                             path.toml neither provides nor
                                                             allowlists (exit 1 if any)
  agent_path.py bins --data path.toml [--except P] DIR...   commands path.toml promises that
                                                             no DIR holds (exit 1 if any),
                                                             less those of provider P

Reading commands out of scripts is a heuristic, kept conservative: in shell, the first word of
each simple command (after `;`, `|`, `&&`, `||`, `$(`, backquotes, `then`, `do`, ... and
wrappers such as `sudo` or `timeout N`), less keywords, builtins, functions the script defines,
variables and quoted text; in Python, the first word of the string literal given to the usual
command runners (Command, execute, bash -c, subprocess, os.system, os.popen).
Standard library only.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SHELL_WORDS = frozenset(
    [
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "case",
        "esac",
        "for",
        "select",
        "while",
        "until",
        "do",
        "done",
        "in",
        "function",
        "time",
        "coproc",
        "!",
        "{",
        "}",
        "[",
        "[[",
        "]]",
        "]",
        ".",
        ":",
        "source",
        "alias",
        "bg",
        "bind",
        "break",
        "builtin",
        "caller",
        "cd",
        "command",
        "compgen",
        "complete",
        "compopt",
        "continue",
        "declare",
        "dirs",
        "disown",
        "echo",
        "enable",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "getopts",
        "hash",
        "help",
        "history",
        "jobs",
        "kill",
        "let",
        "local",
        "logout",
        "mapfile",
        "popd",
        "printf",
        "pushd",
        "pwd",
        "read",
        "readarray",
        "readonly",
        "return",
        "set",
        "shift",
        "shopt",
        "suspend",
        "test",
        "times",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "wait",
    ]
)
# Words that run the next word as the command.
WRAPPERS = frozenset({"sudo", "exec", "nohup", "command", "nice", "ionice", "xargs", "env"})
WITH_ARGUMENT = frozenset({"timeout"})  # `timeout 10 cmd`
SEPARATORS = re.compile(r"\|\||&&|;;|[;|&`]|\$\(|\(|\)|\bthen\b|\bdo\b|\belse\b")
COMMAND_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Arithmetic ($((…)), ((…))) and array assignments (a=(…)) hold no commands.
NOT_COMMANDS = re.compile(r"\$?\(\([^()]*\)\)|\b[A-Za-z_][A-Za-z0-9_]*\+?=\([^()]*\)")
FUNCTION = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_-]*)\s*\(\s*\)")
HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
PYTHON_CALL = re.compile(
    r"""(?:\bCommand|\bexecute|\bbash|\bcheck_call|\bcheck_output|\bcall|\brun|\bPopen|"""
    r"""\bos\.system|\bos\.popen|\bgetstatusoutput|\bgetoutput)\s*\(\s*\[?\s*"""
    r"""(?:"-c"\s*,\s*|'-c'\s*,\s*)?[rbuf]?(["'])([^"'\n]+)\1"""
)


@dataclass(frozen=True)
class PathData:
    commands: dict[str, str]  # command -> provider
    allowlist: dict[str, str]  # command -> why NixOS does not provide it
    scan: tuple[str, ...]  # directories (under --root) whose scripts the agent runs


def load(path: Path) -> PathData:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"{path}: not readable as TOML: {exc}") from None
    commands, allowlist, scan = data.get("commands"), data.get("allowlist"), data.get("scan")
    if not isinstance(commands, dict) or not all(isinstance(v, str) for v in commands.values()):
        raise SystemExit(f"{path}: [commands] must map each command to a provider (a string)")
    if not isinstance(allowlist, dict) or not all(
        isinstance(v, str) and v.strip() for v in allowlist.values()
    ):
        raise SystemExit(f"{path}: [allowlist] must map each command to why it is absent")
    if not isinstance(scan, list) or not all(isinstance(d, str) for d in scan):
        raise SystemExit(f"{path}: scan must be a list of directories")
    both = sorted(set(commands) & set(allowlist))
    if both:
        raise SystemExit(f"{path}: both provided and allowlisted: {', '.join(both)}")
    return PathData(dict(commands), dict(allowlist), tuple(scan))


def _without_heredocs(text: str) -> str:
    """The script without heredoc bodies (data, not commands) and line continuations."""
    out: list[str] = []
    ending: str | None = None
    for line in text.replace("\\\n", " ").splitlines():
        if ending is not None:
            if line.strip() == ending:
                ending = None
            continue
        marker = HEREDOC.search(line)
        if marker:
            ending = marker.group(1)
            line = line[: marker.start()]
        out.append(line)
    return "\n".join(out)


def _code(text: str) -> str:
    """Shell text with comments dropped and quoted strings emptied (`''`), so that quoted words,
    help texts and awk programs, even across lines, are not read as commands; the command
    substitutions inside double quotes are kept, after the string, as commands of their own."""
    out: list[str] = []
    index, size = 0, len(text)
    word_start = True
    while index < size:
        char = text[index]
        if char == "#" and word_start:
            while index < size and text[index] != "\n":
                index += 1
            continue
        if char == "\\" and index + 1 < size:
            out.append(text[index : index + 2])
            index += 2
            word_start = False
            continue
        if char in "'\"":
            close = index + 1
            while close < size and text[close] != char:
                close += 2 if char == '"' and text[close] == "\\" else 1
            content = text[index + 1 : close]
            out.append("''")
            if char == '"':
                for inner in re.findall(r"\$\(([^()]*)\)|`([^`]*)`", content):
                    out.append(" ; " + (inner[0] or inner[1]) + " ; ")
            index = close + 1
            word_start = False
            continue
        out.append(char)
        word_start = char.isspace() or char in ";|&()`"
        index += 1
    return "".join(out)


def _first_command(words: list[str]) -> str | None:
    index = 0
    while index < len(words):
        word = words[index]
        if "=" in word and not word.startswith("="):  # VAR=value before the command
            index += 1
        elif word in WRAPPERS:
            index += 1
            while index < len(words) and words[index].startswith("-"):
                index += 1
        elif word in WITH_ARGUMENT:
            index += 2
        else:
            return word
    return None


def shell_commands(text: str) -> set[str]:
    found: set[str] = set()
    defined = {m.group(1) for line in text.splitlines() if (m := FUNCTION.match(line))}
    in_case = 0
    for line in NOT_COMMANDS.sub(" 0 ", _code(_without_heredocs(text))).splitlines():
        if re.search(r"\bcase\b.*\bin\b", line):
            in_case += 1
        if re.search(r"\besac\b", line):
            in_case = max(0, in_case - 1)
        for part in SEPARATORS.split(line):
            if in_case and ")" in line and re.match(r"^\s*[^\s()]+\s*$", part):
                continue  # a case pattern such as `start)`
            try:
                words = shlex.split(part, posix=True)
            except ValueError:
                words = part.split()
            command = _first_command(words)
            if (
                command is None
                or command in SHELL_WORDS
                or command in defined
                or command.startswith(("/", "./", "-"))
                or not COMMAND_NAME.match(command)
                or command.isdigit()
            ):
                continue
            found.add(command)
    return found


def python_commands(text: str) -> set[str]:
    found: set[str] = set()
    for match in PYTHON_CALL.finditer(text):
        words = match.group(2).split()
        command = _first_command(words) if words else None
        if command and COMMAND_NAME.match(command) and not command.startswith("-"):
            found.add(command)
    return found


def script_kind(path: Path) -> str | None:
    if path.suffix == ".py":
        return "python"
    if path.suffix in (".sh", ".bash"):
        return "shell"
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return None
    if first.startswith(b"#!"):
        if b"python" in first:
            return "python"
        if re.search(rb"\b(ba)?sh\b", first):
            return "shell"
    return None


def scripts_under(root: Path, scan: Iterable[str]) -> Iterator[tuple[Path, str]]:
    for directory in scan:
        base = root / directory
        if not base.is_dir():
            raise SystemExit(f"{base}: a directory path.toml scans does not exist")
        for path in sorted(base.rglob("*")):
            kind = script_kind(path) if path.is_file() else None
            if kind is not None:
                yield path, kind


def unprovided(data: PathData, root: Path) -> dict[str, list[str]]:
    """Command -> the scripts (relative to root) that run it, for commands path.toml lacks."""
    missing: dict[str, list[str]] = {}
    for path, kind in scripts_under(root, data.scan):
        text = path.read_text(encoding="utf-8", errors="replace")
        found = python_commands(text) if kind == "python" else shell_commands(text)
        for command in sorted(found - set(data.commands) - set(data.allowlist)):
            missing.setdefault(command, []).append(str(path.relative_to(root)))
    return missing


def absent(data: PathData, directories: Iterable[Path], skip: Iterable[str] = ()) -> list[str]:
    """Commands path.toml promises that none of the directories holds (less those of the
    providers in `skip`: /run/wrappers exists on a running host only)."""
    dirs, skipped = list(directories), set(skip)
    return sorted(
        command
        for command, provider in data.commands.items()
        if provider not in skipped and not any((d / command).exists() for d in dirs)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent_path.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    scripts = sub.add_parser("scripts", help="commands the scripts run that path.toml lacks")
    scripts.add_argument("--data", type=Path, required=True)
    scripts.add_argument("--root", type=Path, required=True)
    bins = sub.add_parser("bins", help="commands path.toml promises that no directory holds")
    bins.add_argument("--data", type=Path, required=True)
    bins.add_argument("--except", dest="skip", action="append", default=[], metavar="PROVIDER")
    bins.add_argument("dirs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    data = load(args.data)
    if args.action == "scripts":
        missing = unprovided(data, args.root)
        for command, where in sorted(missing.items()):
            print(
                f"{command}: run by {', '.join(where)}; add it to {args.data.name} [commands] "
                "(or, if NixOS deliberately lacks it, to [allowlist] with the reason)",
                file=sys.stderr,
            )
        return 1 if missing else 0
    lacking = absent(data, args.dirs, args.skip)
    for command in lacking:
        print(
            f"{command}: promised by {args.data.name}, found in no PATH directory", file=sys.stderr
        )
    return 1 if lacking else 0


if __name__ == "__main__":
    sys.exit(main())
