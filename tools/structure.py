"""The structure drawing: streamgen's packages as rooms, its imports as arrows.

Every ``import`` and ``from … import`` in streamgen's modules is read with :mod:`ast`, those
inside functions and under ``if TYPE_CHECKING:`` included: an import that waits for its first
call (torch, the worker) is still a dependency. A module belongs to a *room*: its sub-package
(``worker``, ``store``, …) or, for a module at the top of the package, the module itself
(``settings``, ``errors``). An arrow from one room to another counts the import statements that
make it.

:data:`LAYERS` declares the order of the rooms, bottom first: a room may import rooms of its own
layer or below. The report names every arrow that goes up a layer, every circle of rooms and
every import of a module outside the wheel (benchmarks, tests, tools);
``tests/unit/test_layering.py`` asserts there are none. ``scripts/structure`` prints it, then
the files a request's path runs through from poll to commit (:mod:`tools.request_path`,
measured by running requests through the worker, not listed by hand).

This lives in ``tools/``, beside the package and outside the wheel: it reads the source tree,
which an installed streamgen does not have, and it measures no speed, so ``benchmarks/`` is not
its place either.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "streamgen"
ROOT = Path(__file__).resolve().parent.parent

# Bottom first. A room may import its own layer and those below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exit_codes", "errors", "credentials", "log_routing"),  # failures, exits, third-party logs
    # the typed settings, their defaults; Kafka clients' config and their first metadata request;
    # what answers at a broker's or a registry's address (start-up's first questions)
    # and the priority lanes (one request topic each); the Kafka protocol spoken directly
    # where librdkafka has no call (a share group's offsets)
    (
        "settings",
        "setting_pairs",
        "setting_checks",
        "lanes",
        "kafka_config",
        "kafka_metadata",
        "listener_probe",
        "registry_probe",
        "kafka_protocol",
    ),
    # requests and results, their wire formats, request validation; tenants (named by requests)
    ("contracts", "tenants"),
    ("store",),  # object stores, image bytes for storage, init-image places
    ("engine",),  # batched diffusion
    ("configuration", "telemetry"),  # reading and checking the settings; metrics and spans
    ("worker",),  # one consumer-group member: poll → generate → store → publish → commit
    ("fleet", "ops", "submit", "local"),  # one worker per GPU; topics, lag, replay; producers
    ("cli",),  # the streamgen command
    ("__init__", "__main__"),
)

# Top-level directories of the repository that the wheel leaves out: the product never imports them.
OUTSIDE_WHEEL = ("benchmarks", "tests", "tools")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "streamgen.worker.loop"
    target: str  # the imported module, e.g. "streamgen.worker.offsets"
    line: int


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(node: ast.Import | ast.ImportFrom, source: str, is_package: bool) -> list[str]:
    """The dotted names of the modules one import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = source.split(".")
        keep = len(anchor) - node.level + (1 if is_package else 0)
        base = ".".join([*anchor[:keep], *([base] if base else [])])
    # "from pkg import name" loads pkg.name when that is a module, else pkg itself.
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def imports(root: Path = ROOT, package: str = PACKAGE) -> list[Import]:
    """Every import of ``package``'s modules, one per (statement, imported module)."""
    files = module_files(root, package)
    found: list[Import] = []
    for source, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _resolve(node, source, is_package)
            if isinstance(node, ast.ImportFrom):
                # Submodules named in the statement, else the module it is from.
                modules = [name for name in names[:-1] if name in files] or names[-1:]
            else:
                modules = names
            found.extend(Import(source, target, node.lineno) for target in modules)
    return found


def room_of(module: str, package: str = PACKAGE) -> str:
    """``streamgen.worker.loop`` → ``worker``; ``streamgen.settings`` → ``settings``."""
    parts = module.split(".")
    if parts == [package]:
        return "__init__"
    return parts[1]


@dataclass(frozen=True)
class Structure:
    rooms: dict[str, tuple[int, int]]  # room -> (modules, lines)
    arrows: Counter[tuple[str, str]]  # (from room, to room) -> import statements
    outside: list[Import]  # imports of benchmarks, tests or tools

    def upward(self, layers: Sequence[Sequence[str]] = LAYERS) -> list[tuple[str, str, int]]:
        level = layer_of(layers)
        return sorted(
            (src, dst, n)
            for (src, dst), n in self.arrows.items()
            if src in level and dst in level and level[dst] > level[src]
        )

    def circles(self) -> list[list[str]]:
        return circles(self.arrows)

    def unplaced(self, layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
        level = layer_of(layers)
        return sorted(room for room in self.rooms if room not in level)


def layer_of(layers: Sequence[Sequence[str]]) -> dict[str, int]:
    return {room: index for index, rooms in enumerate(layers) for room in rooms}


def read(root: Path = ROOT, package: str = PACKAGE) -> Structure:
    files = module_files(root, package)
    rooms: dict[str, tuple[int, int]] = {}
    for module, path in files.items():
        room = room_of(module, package)
        count, lines = rooms.get(room, (0, 0))
        rooms[room] = (count + 1, lines + len(path.read_text(encoding="utf-8").splitlines()))
    arrows: Counter[tuple[str, str]] = Counter()
    outside: list[Import] = []
    for found in imports(root, package):
        top = found.target.split(".")[0]
        if top in OUTSIDE_WHEEL:
            outside.append(found)
        if top != package:
            continue
        src, dst = room_of(found.source, package), room_of(found.target, package)
        if src != dst:
            arrows[src, dst] += 1
    return Structure(rooms, arrows, outside)


def circles(arrows: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected groups of more than one room (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for src, dst in arrows:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def draw(structure: Structure, layers: Sequence[Sequence[str]] = LAYERS, width: int = 96) -> str:
    """Rooms as boxes, top layer first; inside each, its arrows with their counts."""
    level = layer_of(layers)
    upward = {(src, dst) for src, dst, _ in structure.upward(layers)}
    in_circle = {
        (src, dst)
        for group in structure.circles()
        for src, dst in structure.arrows
        if src in group and dst in group
    }
    order = sorted(structure.rooms, key=lambda room: (-level.get(room, len(layers)), room))
    inner = width - 4
    out: list[str] = []
    for room in order:
        modules, lines = structure.rooms[room]
        where = f"layer {level[room]}" if room in level else "NOT PLACED"
        title = f"{room}  ·  {modules} module{'s' if modules != 1 else ''}, {lines:,} lines"
        out.append("┌" + "─" * (width - 2) + "┐")
        out.append(f"│ {title:<{inner - len(where)}}{where} │")
        targets = sorted(
            ((dst, n) for (src, dst), n in structure.arrows.items() if src == room),
            key=lambda item: (-level.get(item[0], -1), item[0]),
        )
        words = []
        for dst, n in targets:
            mark = "  ▲UP" if (room, dst) in upward else ""
            mark += "  ○CIRCLE" if (room, dst) in in_circle else ""
            words.append(f"──▶ {dst} {n}{mark}")
        line = ""
        for word in words or ["(imports no other room)"]:
            if line and len(line) + 3 + len(word) > inner:
                out.append(f"│ {line:<{inner}} │")
                line = ""
            line = f"{line}   {word}" if line else word
        out.append(f"│ {line:<{inner}} │")
        out.append("└" + "─" * (width - 2) + "┘")
    out.append("")
    out.append("arrows that go up a layer:")
    out.extend(f"  {src} ──▶ {dst} ({n})" for src, dst, n in structure.upward(layers))
    if not upward:
        out.append("  none")
    out.append("circles:")
    out.extend("  " + " ⇄ ".join(group) for group in structure.circles())
    if not structure.circles():
        out.append("  none")
    out.append("rooms in no layer:")
    out.append("  " + (", ".join(structure.unplaced(layers)) or "none"))
    out.append("imports of what the wheel leaves out (benchmarks, tests, tools):")
    out.extend(f"  {i.source}:{i.line} imports {i.target}" for i in structure.outside)
    if not structure.outside:
        out.append("  none")
    return "\n".join(out)


def offences(structure: Structure, layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
    """One line per upward arrow, circle, unplaced room or import from outside the wheel."""
    found = [f"{src} imports {dst}, a higher layer" for src, dst, _ in structure.upward(layers)]
    found += ["circle: " + " ⇄ ".join(group) for group in structure.circles()]
    found += [f"room {room} is in no layer" for room in structure.unplaced(layers)]
    found += [f"{i.source}:{i.line} imports {i.target}" for i in structure.outside]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    parser.add_argument("--check", action="store_true", help="exit 1 on any offence")
    parser.add_argument(
        "--no-path",
        action="store_true",
        help="skip the request's path (it runs four requests through the worker, ~20 s)",
    )
    args = parser.parse_args(argv)
    structure = read(args.root)
    print(draw(structure))
    if not args.no_path and args.root.resolve() != ROOT:
        print("\n(the request's path is measured on this tree only: the worker runs here)")
    elif not args.no_path:
        from tools import request_path

        print()
        print(request_path.render([request_path.measure(e) for e in request_path.ENGINES]))
    return 1 if args.check and offences(structure) else 0


if __name__ == "__main__":
    sys.exit(main())
