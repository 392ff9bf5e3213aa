"""The `kvmfleet` command: a thin argparse layer over the library."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from kvmfleet import __version__, cache
from kvmfleet import secretscli as secrets_command
from kvmfleet.cloudstack_api import command as cloudstack_command
from kvmfleet.inventory import GENERATED_FILE, HARDWARE_FILE, HOST_FILE, HOSTS_DIR, entry_kind, load
from kvmfleet.output import (
    Planned,
    Status,
    apply,
    refusals,
    safe_target,
    stale,
    tracked_files,
    untracked,
    write_atomic,
)
from kvmfleet.problems import InventoryError, Problem, Severity
from kvmfleet.warm import WarmWorker, warm_worker

if TYPE_CHECKING:
    from kvmfleet.generate import Fleet

# The models, capabilities and API client are imported by the commands that need them: an
# unchanged fleet is answered from the cache without loading them (most of a run's start-up).

EXIT_OK = 0
EXIT_STALE = 1
EXIT_INVALID = 2

_DESCRIPTION = """\
Turn the TOML inventory under hosts/ into NixOS host modules (hosts/<name>/generated.nix).

examples:
  kvmfleet generate                 validate the fleet, write every hosts/*/generated.nix
  kvmfleet generate --check         exit 1 if any generated file is stale, missing or orphaned
  kvmfleet check                    validate only
  kvmfleet show kvm01               merged inventory of kvm01, each value with its source file
  kvmfleet new kvm03 --like kvm01   scaffold hosts/kvm03/host.toml from kvm01
  kvmfleet schema                   write hosts/host.schema.json and hosts/site.schema.json
  kvmfleet install-plan kvm03       commands that install kvm03 from the NixOS ISO
  kvmfleet secrets check            every host's sops file holds its secrets, for the right keys
"""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="kvmfleet", description=_DESCRIPTION, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"kvmfleet {__version__}")
    parser.add_argument(
        "--root", type=Path, default=Path(), help="fleet directory holding hosts/ (default: .)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser(
        "generate",
        help="validate the fleet and write hosts/*/generated.nix",
        formatter_class=fmt,
        description="Validate the whole fleet, then write hosts/<name>/generated.nix for every host (or the\n"
        "named ones). Nothing is written unless the whole fleet is valid. Unchanged files are not\n"
        "touched; a file edited by hand is not overwritten without --force.",
        epilog="examples:\n  kvmfleet generate\n  kvmfleet generate kvm03\n  kvmfleet generate --check   # in CI",
    )
    gen.add_argument(
        "hosts",
        nargs="*",
        metavar="HOST",
        help="only these hosts (default: all, and remove orphans)",
    )
    mode = gen.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file would change"
    )
    mode.add_argument(
        "--force", action="store_true", help="overwrite generated files that were edited by hand"
    )
    _no_cache(gen)

    check = sub.add_parser(
        "check",
        help="validate the inventory, write nothing",
        formatter_class=fmt,
        description="Validate every host and the fleet-wide rules; print every problem, one per line.",
        epilog="example:\n  kvmfleet check && echo fleet ok",
    )
    _no_cache(check)

    show = sub.add_parser(
        "show",
        help="a host's merged inventory with the source of each value",
        formatter_class=fmt,
        description="Print one host's inventory after layering site.toml, its roles and host.toml.",
        epilog="examples:\n  kvmfleet show kvm01\n  kvmfleet show kvm01 --json | jq .",
    )
    show.add_argument("host", metavar="HOST")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    new = sub.add_parser(
        "new",
        help="scaffold a host from another one",
        formatter_class=fmt,
        description="Copy hosts/OTHER/host.toml to hosts/HOST/host.toml, keeping comments. Values that must be\n"
        "unique in the fleet are cleared (addresses, MACs), replaced (the IQN with the new name) or\n"
        "removed where they default to a value derived for the new host (the CloudStack GUID), and\n"
        "listed, so the new host cannot silently collide with the old.",
        epilog="example:\n  kvmfleet new kvm03 --like kvm01 && $EDITOR hosts/kvm03/host.toml",
    )
    new.add_argument("host", metavar="HOST")
    new.add_argument("--like", required=True, metavar="OTHER", help="existing host to copy")

    schema = sub.add_parser(
        "schema",
        help="write JSON Schemas for editor completion",
        formatter_class=fmt,
        description="Write hosts/host.schema.json and hosts/site.schema.json. Start a host file with\n"
        "'#:schema ../host.schema.json' (site.toml: '#:schema site.schema.json') for completion in\n"
        "editors that read it (e.g. taplo / Even Better TOML).",
        epilog="examples:\n  kvmfleet schema\n  kvmfleet schema --stdout > host.schema.json\n"
        "  kvmfleet schema --markdown > docs/inventory.md",
    )
    schema.add_argument(
        "--stdout", action="store_true", help="print the host schema instead of writing files"
    )
    schema.add_argument(
        "--markdown", action="store_true", help="print the inventory reference (docs/inventory.md)"
    )
    cloudstack_command.add_parser(sub, fmt)
    secrets_command.add_parser(sub, fmt)

    install = sub.add_parser(
        "install-plan",
        help="the commands that install a host from the NixOS ISO",
        formatter_class=fmt,
        description="Print the exact commands that partition HOST's disk with its generated disko layout,\n"
        "capture hardware.nix and run nixos-install, from the NixOS minimal ISO. Refuses while\n"
        "hosts/HOST/generated.nix is not what `kvmfleet generate` writes now. Without HOST: every\n"
        "host with the disk its install wipes.",
        epilog="examples:\n  kvmfleet install-plan kvm03\n  kvmfleet install-plan",
    )
    install.add_argument("host", metavar="HOST", nargs="?")
    return parser


def _no_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"validate and render every host, ignoring {cache.CACHE_FILE} (implied when the CI "
        "environment variable is set)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    try:
        sys.stdout.flush()  # a full or closed stdout is reported here, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (`| head`): not an error; keep Python quiet at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:
        if code == EXIT_INVALID:  # already reported
            return code
        print(f"kvmfleet: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    return code


def entry() -> NoReturn:
    """The `kvmfleet` command: `main`, then leave without tearing the interpreter down (freeing a
    large fleet's objects one by one costs more than a tenth of an edit's run). Nothing is left
    to do at exit: no file is open for writing, no worker runs, and the streams are flushed
    here."""
    code = main()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    command = _COMMANDS[args.command]
    try:
        return command.run(args)
    except InventoryError as exc:
        _report(exc.problems)
        errors = sum(1 for p in exc.problems if p.severity is Severity.ERROR)
        plural = "s" if errors != 1 else ""
        outcome = "; nothing written" if command.writes else ""
        print(f"kvmfleet: {errors} error{plural}{outcome}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        # The file system or a stream refused (read-only, full, permissions): one line, no traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kvmfleet: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID


def _report(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def _validated(root: Path) -> Fleet:
    from kvmfleet.generate import build

    fleet = build(root)
    _report(fleet.warnings)
    return fleet


def _store(root: Path, no_cache: bool, tracked: set[str] | None) -> cache.Store | None:
    store, notes = cache.open_store(root, tracked, enabled=_cache_allowed(no_cache))
    for line in notes:
        print(line, file=sys.stderr)
    return store


def _tracked(root: Path) -> set[str] | None:
    """What git tracks of the fleet (one `git ls-files` for the whole run)."""
    return tracked_files(root, [HOSTS_DIR, "secrets", cache.CACHE_FILE])


def _check(root: Path, *, no_cache: bool) -> int:
    with warm_worker(_may_reuse(root, no_cache)) as warm:
        return _check_with(root, no_cache=no_cache, warm=warm)


def _may_reuse(root: Path, no_cache: bool) -> bool:
    """Whether this run may find a cache to reuse (and so may need a few hosts computed)."""
    return _cache_allowed(no_cache) and entry_kind(root / cache.CACHE_FILE) == "file"


def _cache_allowed(no_cache: bool) -> bool:
    return not no_cache and not cache.in_ci()


def _check_with(root: Path, *, no_cache: bool, warm: WarmWorker | None) -> int:
    from kvmfleet.run import run

    store = _store(root, no_cache, _tracked(root))
    inputs = cache.read_inputs(root)
    state = cache.unchanged(store, inputs)
    if state is not None:
        _report_cached(state)
        print(f"kvmfleet: {len(state.hosts)} hosts valid")
        return EXIT_OK
    outcome = run(root, store, inputs, warm)  # `check` writes nothing, not even the cache
    _report(outcome.warnings)
    print(f"kvmfleet: {len(outcome.hosts)} hosts valid")
    return EXIT_OK


def _report_cached(state: cache.RunState) -> None:
    for line in state.warnings:
        print(line, file=sys.stderr)


def _generate(
    root: Path, only: list[str] | None, *, check: bool, force: bool, no_cache: bool
) -> int:
    with warm_worker(_may_reuse(root, no_cache)) as warm:
        return _generate_with(root, only, check=check, force=force, no_cache=no_cache, warm=warm)


def _generate_with(
    root: Path,
    only: list[str] | None,
    *,
    check: bool,
    force: bool,
    no_cache: bool,
    warm: WarmWorker | None,
) -> int:
    tracked = _tracked(root)
    store = _store(root, no_cache, tracked)
    inputs = cache.read_inputs(root)
    if only is None and not force:
        state = cache.unchanged(store, inputs)
        if state is not None:
            _report_cached(state)
            files = len(state.outputs)
            if check:
                print(f"kvmfleet: {files} generated files up to date")
            else:
                _warn_untracked(root, list(state.hosts), None, tracked)
                print(f"kvmfleet: {len(state.hosts)} hosts; files: 0 written, {files} unchanged")
            return EXIT_OK
    from kvmfleet.run import plan, run

    if only is not None:
        load(root, only=only)  # unknown host names are errors
    outcome = run(root, store, inputs, warm, saves=True)
    if warm is not None:
        warm.stop()  # not needed any more: it would only hold a core during the writes
    _report(outcome.warnings)
    planned = plan(outcome, only)
    hosts = list(outcome.hosts)
    warnings = [str(w) for w in outcome.warnings]
    if check:
        code = _report_check(planned)
        if code == EXIT_OK and store is not None:
            state = cache.fleet_state(store, inputs, hosts, warnings, _fleet_wide(planned))
            store.save(state if only is None else None)
        return code
    refused = refusals(planned, force=force)
    if refused:
        for line in refused:
            print(line, file=sys.stderr)
        print("kvmfleet: refusing to overwrite; nothing written", file=sys.stderr)
        return EXIT_INVALID
    failed = []
    for p, done in zip(planned, apply(root, planned), strict=True):
        if done.line is not None:
            print(done.line, file=sys.stderr if done.warning or not done.ok else sys.stdout)
        if not done.ok:
            failed.append(p)
    _warn_untracked(root, hosts, only, tracked)
    written = sum(1 for p in planned if p.content is not None and p.status is not Status.UNCHANGED)
    unchanged = sum(1 for p in planned if p.status is Status.UNCHANGED)
    print(
        f"kvmfleet: {len(hosts)} hosts; files: {written - len(failed)} written, {unchanged} unchanged"
    )
    if failed:
        if store is not None:
            cache.forget(root)
        print(f"kvmfleet: {len(failed)} file(s) could not be written", file=sys.stderr)
        return EXIT_INVALID
    if store is not None:
        settled = only is None and all(p.status in _SETTLED for p in planned)
        state = cache.fleet_state(store, inputs, hosts, warnings, _fleet_wide(planned))
        store.save(state if settled else None)
    return EXIT_OK


def _fleet_wide(planned: list[Planned]) -> tuple[str, ...]:
    """The generated files besides the hosts' (.sops.yaml), for the cache to watch."""
    return tuple(p.path for p in planned if not p.path.startswith(f"{HOSTS_DIR}/"))


# After generate has carried these out, every generated file is as the next run would write it.
_SETTLED = frozenset(
    {Status.NEW, Status.UPDATED, Status.UNCHANGED, Status.HAND_EDITED, Status.ORPHANED}
)


def _report_check(planned: list[Planned]) -> int:
    out_of_date = stale(planned)
    for line in out_of_date:
        print(line)
    if out_of_date:
        print(
            f"kvmfleet: {len(out_of_date)} generated file(s) out of date; run `kvmfleet generate`",
            file=sys.stderr,
        )
        return EXIT_STALE
    print(f"kvmfleet: {len(planned)} generated files up to date")
    return EXIT_OK


def _warn_untracked(
    root: Path, hosts: list[str], only: list[str] | None, tracked: set[str] | None
) -> None:
    if tracked is None:
        return  # git cannot tell
    missing = []
    for name in hosts:
        if only is None or name in only:
            directory = f"{HOSTS_DIR}/{name}"
            missing += [
                path
                for path in (f"{directory}/{HOST_FILE}", f"{directory}/{GENERATED_FILE}")
                if path not in tracked
            ]
            # The flake imports hardware.nix only if git tracks it: an untracked one is silently
            # dropped. It reads the host's sops file only if git tracks it: untracked, the host
            # would be built without its secrets. (Tracked paths need no look at the disk.)
            for optional in (f"{directory}/{HARDWARE_FILE}", f"secrets/{name}.yaml"):
                if optional not in tracked and entry_kind(f"{root}/{optional}") != "missing":
                    missing.append(optional)
    if not missing:
        return
    for directory in dict.fromkeys(p.rsplit("/", 1)[0] for p in missing):
        print(
            f"warning: {directory}/ has files git does not track; flakes only see tracked files: "
            f"git add {directory}",
            file=sys.stderr,
        )


def _new(root: Path, name: str, like: str) -> int:
    from kvmfleet.scaffold import new_host

    done = new_host(root, name, like)
    print(f"{done.path}: written (from {like})")
    for key in done.replaced:
        print(f"  {key}: given a fresh unique value")
    for key in done.to_fill:
        print(f"  {key}: cleared; fill in a value unique in the fleet")
    for key in done.own:
        print(f"  {key}: cleared; fill in {name}'s own value")
    for key in done.dropped:
        print(f"  {key}: removed; it defaults to the value derived for {name}")
    print(
        f"next: edit {done.path}, run `kvmfleet generate {name}`, then `git add {HOSTS_DIR}/{name}`"
    )
    return EXIT_OK


def _schema(root: Path, *, stdout: bool) -> int:
    from kvmfleet.schema import HOST_SCHEMA_FILE, SITE_SCHEMA_FILE, dumps, host_schema, site_schema

    if stdout:
        sys.stdout.write(dumps(host_schema()))
        return EXIT_OK
    if not (root / HOSTS_DIR).is_dir():
        raise InventoryError(
            [Problem(HOSTS_DIR, (), "no such directory (is --root the fleet's flake directory?)")]
        )
    for filename, schema in ((HOST_SCHEMA_FILE, host_schema()), (SITE_SCHEMA_FILE, site_schema())):
        target = root / HOSTS_DIR / filename
        text = dumps(schema)
        safe_target(root, target)  # not even read through a link
        if _reads_as(target, text):
            print(f"{HOSTS_DIR}/{filename}: unchanged")
            continue
        write_atomic(target, text, root=root)
        print(f"{HOSTS_DIR}/{filename}: written")
    return EXIT_OK


def _reads_as(target: Path, text: str) -> bool:
    """Whether `target` is a regular file holding exactly `text` (it is then left untouched)."""
    try:
        return target.is_file() and not target.is_symlink() and target.read_bytes() == text.encode()
    except OSError:
        return False


def _install_plan(root: Path, name: str | None) -> int:
    from kvmfleet.generate import plan
    from kvmfleet.install_plan import host_plan, overview

    if name is not None:
        load(root, only=[name])  # an unknown host name is an error
    fleet = _validated(root)
    if name is None:
        sys.stdout.write(overview(fleet))
        return EXIT_OK
    planned = plan(fleet, [name])
    out_of_date = stale(planned)
    if out_of_date:
        # The install uses the generated file as it is on disk: never a plan for another layout.
        for line in out_of_date:
            print(
                f"{line}; run `kvmfleet generate` (and commit) before installing", file=sys.stderr
            )
        print("kvmfleet: refusing to print an install plan", file=sys.stderr)
        return EXIT_STALE
    if untracked(root, [planned[0].path]):
        print(
            f"warning: {planned[0].path}: not tracked by git, so the flake cannot see it: "
            f"git add {planned[0].path}",
            file=sys.stderr,
        )
    from kvmfleet.secretscheck import check as check_secrets

    # The first boot needs its secrets: say what is wrong with them, but still plan (a host
    # may be installed first and keyed afterwards).
    for line in check_secrets(fleet, [name]):
        print(f"warning: {line}", file=sys.stderr)
    (result,) = [r for r in fleet.hosts if r.name == name]
    sys.stdout.write(host_plan(result))
    return EXIT_OK


def _show(root: Path, name: str, *, as_json: bool) -> int:
    from kvmfleet.show import show_json, show_text

    inv = load(root, only=[name]).hosts[0]
    sys.stdout.write(show_json(inv) if as_json else show_text(inv))
    return EXIT_OK


def _reference() -> int:
    from kvmfleet.reference import markdown

    sys.stdout.write(markdown())
    return EXIT_OK


@dataclass(frozen=True)
class _Command:
    run: Callable[[argparse.Namespace], int]
    writes: bool  # whether an inventory error means "nothing written"


_COMMANDS: dict[str, _Command] = {
    "generate": _Command(
        lambda a: _generate(
            a.root, a.hosts or None, check=a.check, force=a.force, no_cache=a.no_cache
        ),
        writes=True,
    ),
    "check": _Command(lambda a: _check(a.root, no_cache=a.no_cache), writes=False),
    "show": _Command(lambda a: _show(a.root, a.host, as_json=a.json), writes=False),
    "new": _Command(lambda a: _new(a.root, a.host, a.like), writes=True),
    "install-plan": _Command(lambda a: _install_plan(a.root, a.host), writes=False),
    "schema": _Command(
        lambda a: _reference() if a.markdown else _schema(a.root, stdout=a.stdout), writes=True
    ),
    "cloudstack": _Command(lambda a: cloudstack_command.run(a, a.root), writes=False),
    "secrets": _Command(lambda a: secrets_command.run(a, a.root), writes=False),
}


if __name__ == "__main__":
    sys.exit(main())
