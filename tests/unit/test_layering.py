"""The package's layers (``LAYERS`` in tools/structure.py, drawn by ``scripts/structure``):
no import runs up a layer, no rooms import each other in a circle, every room has its place,
and the product never imports what the wheel leaves out."""

from __future__ import annotations

from pathlib import Path

from tools.structure import LAYERS, module_files, offences, read

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
