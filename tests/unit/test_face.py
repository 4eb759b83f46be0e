"""The package's face: ``streamgen.__all__`` is exactly what ``import streamgen`` offers, each
name resolves to the object its home module defines, and a producer that uses the face never
loads torch or diffusers."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import streamgen

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_names_what_the_lazy_table_serves() -> None:
    assert streamgen.__all__ == sorted(streamgen.__all__, key=lambda n: (n[0].islower(), n))
    assert set(streamgen.__all__) == set(streamgen._HOMES)


def test_each_public_name_resolves_to_its_home_modules_object() -> None:
    for name in streamgen.__all__:
        home = importlib.import_module(streamgen._HOMES[name])
        assert getattr(streamgen, name) is getattr(home, name), name


def test_the_public_names_are_exactly_all() -> None:
    # As httpx does: every public attribute of the package, once each name has been used, is
    # in __all__ (submodules, which the import system sets on the package, aside).
    for name in streamgen.__all__:
        getattr(streamgen, name)
    public = {
        name
        for name, value in vars(streamgen).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(streamgen.__all__)
    assert {n for n in dir(streamgen) if not n.startswith("_")} >= set(streamgen.__all__)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    try:
        streamgen.GenerationRequests  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "'GenerationRequests'" in str(exc)
    else:
        raise AssertionError("a misspelt name resolved")


# Run in a fresh interpreter: this test process may have loaded torch already.
PRODUCER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone

    import streamgen

    assert "streamgen.contracts" not in sys.modules, "import streamgen loaded the contracts"
    settings = streamgen.Settings()
    codec = streamgen.request_codec(settings.kafka, settings.topics.requests)
    request = streamgen.GenerationRequest("r-1", "a red ceramic mug", seed=7)
    streamgen.validate(
        request, settings.validation, models=None, schedulers=None, now=datetime.now(timezone.utc)
    )
    assert codec.decode(codec.encode(request)) == request
    for name in streamgen.__all__:
        getattr(streamgen, name)
    """
)
# Appended to each script: prints which of torch and diffusers it loaded.
PRINT_HEAVY = textwrap.dedent(
    """
    import sys as _sys
    print(",".join(sorted({m.partition(".")[0] for m in _sys.modules} & {"torch", "diffusers"})))
    """
)


def test_using_the_face_loads_neither_torch_nor_diffusers() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER + PRINT_HEAVY],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


README_MARKER = "<!-- run by tests/unit/test_face.py"


def test_the_readme_library_example_runs_on_the_face_alone() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(README_MARKER) :]
    block = block[block.index("```python\n") + len("```python\n") :]
    block = block[: block.index("```")]
    assert "import streamgen\n" in block
    assert "from streamgen." not in block, "the example reaches past the face"
    done = subprocess.run(
        [sys.executable, "-c", block + PRINT_HEAVY],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "STREAMGEN_KAFKA_SCHEMA_REGISTRY_URL": ""},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
