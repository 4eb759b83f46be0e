"""The package's layers (``LAYERS`` in tools/structure.py, drawn by ``scripts/structure``):
no import runs up a layer, no rooms import each other in a circle, every room has its place,
and the product never imports what the wheel leaves out."""

from __future__ import annotations

from pathlib import Path

from tools.structure import LAYERS, Import, imports, module_files, offences, read

ROOT = Path(__file__).resolve().parents[2]


def test_no_import_runs_up_and_no_rooms_form_a_circle() -> None:
    assert offences(read(ROOT)) == []


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "streamgen"
    for room, body in {
        "errors": "",
        "worker/loop": "from streamgen.telemetry.metrics import Metrics\n",
        "telemetry/metrics": "def f():\n    from streamgen.worker import loop\n",
        "settings": "import benchmarks.report\n",
    }.items():
        path = package / f"{room}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(body)
    found = offences(read(tmp_path))
    assert "telemetry imports worker, a higher layer" in found
    assert "circle: telemetry ⇄ worker" in found
    assert any("imports benchmarks.report" in line for line in found)


def borrowed_by_support(found: list[Import]) -> list[str]:
    """Imports of tests/support's modules that reach benchmarks or the rest of tests."""
    return [
        f"{i.source}:{i.line} imports {i.target}"
        for i in found
        if i.source.startswith("tests.support")
        and i.target.split(".")[0] in ("benchmarks", "tests")
        and not i.target.startswith("tests.support")
    ]


def test_tests_support_imports_neither_benchmarks_nor_other_tests() -> None:
    """Benchmarks borrow tests/support's in-memory Kafka; only a one-way borrowing keeps
    benchmarks and tests out of a circle."""
    found = imports(ROOT, "tests")
    assert any(i.source.startswith("tests.support.") for i in found), "tests/support not read"
    assert borrowed_by_support(found) == []


def test_the_support_check_sees_an_import_of_benchmarks_or_other_tests() -> None:
    found = [
        Import("tests.support.memory_kafka", "benchmarks.gaps", 3),
        Import("tests.support.kafka", "tests.unit.memory_store", 4),
        Import("tests.support.kafka", "tests.support.memory_kafka", 5),
        Import("tests.unit.test_x", "benchmarks.gaps", 6),
    ]
    assert borrowed_by_support(found) == [
        "tests.support.memory_kafka:3 imports benchmarks.gaps",
        "tests.support.kafka:4 imports tests.unit.memory_store",
    ]


def test_every_layer_names_distinct_rooms() -> None:
    rooms = [room for layer in LAYERS for room in layer]
    assert len(rooms) == len(set(rooms))


# One module, one job (STYLE.md): a module past this has two, and is split along their seam.
MAX_MODULE_LINES = 350


def test_no_product_module_is_over_350_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_files(ROOT).items()}
    assert module_files(ROOT), "no modules found: the check would pass vacuously"
    offenders = {name: n for name, n in sorted(sizes.items()) if n > MAX_MODULE_LINES}
    assert offenders == {}, f"over {MAX_MODULE_LINES} lines: {offenders}"
