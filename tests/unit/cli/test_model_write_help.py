"""``streamgen model write --help`` names every family's variants, read from ``TINY_ARCHS`` so
a family added there is named without editing the help."""

from __future__ import annotations

from click.testing import CliRunner

from streamgen.cli.model import model
from streamgen.engine.families import TINY_ARCHS


def test_variant_help_names_every_family_and_its_variants() -> None:
    result = CliRunner().invoke(model, ["write", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # undo click's wrapping
    for family, variants in TINY_ARCHS.items():
        assert f"{family}: {', '.join(variants)}" in text
    assert "#large-turbo" in text and "#lightning-4step" in text
