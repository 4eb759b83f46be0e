"""Development tools that read the source tree (``scripts/structure``). Not in the wheel."""
