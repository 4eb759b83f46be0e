"""The wheel is the product alone, and every module in it imports without dev dependencies.

Builds the wheel exactly as ``pip install .`` would, checks it carries no benchmarks, tests or
tools, then imports each of its ``streamgen`` modules in a fresh interpreter whose import
system refuses the dev-only distributions (``pyproject.toml``'s ``dev`` extra): a product
module that needs one fails here instead of on a production install.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "_pytest", "hypothesis", "pyinstrument", "ruff", "mypy")

# Run in the child: refuse the dev-only distributions, import every module of the unpacked
# wheel, and check that each came from the wheel (not from the source tree).
IMPORT_ALL = textwrap.dedent(
    """
    import importlib, importlib.abc, sys
    from pathlib import Path

    unpacked, refused = Path(sys.argv[1]), set(sys.argv[2].split(","))

    class RefuseDevOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in refused:
                raise ImportError(f"{name} is a dev-only dependency, absent in production")
            return None

    sys.meta_path.insert(0, RefuseDevOnly())
    sys.path.insert(0, str(unpacked))
    failures = []
    for path in sorted((unpacked / "streamgen").rglob("*.py")):
        parts = list(path.relative_to(unpacked).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if name == "streamgen.__main__":  # runs the command when imported
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if not Path(module.__file__).resolve().is_relative_to(unpacked.resolve()):
            failures.append(f"{name}: imported from {module.__file__}, not the wheel")
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("streamgen-*.whl")
    return built


def test_the_wheel_holds_the_product_alone(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {"streamgen", "streamgen-0.1.0.dist-info"}, tops


@pytest.mark.slow
def test_every_module_of_the_wheel_imports_without_dev_dependencies(
    wheel: Path, tmp_path: Path
) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    child = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, str(unpacked), ",".join(DEV_ONLY)],
        cwd=tmp_path,  # not the source tree, which would shadow the wheel
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stdout + child.stderr
