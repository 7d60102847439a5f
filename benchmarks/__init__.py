"""Starq's benchmark suite: ``uv run python -m benchmarks run`` (see ``benchmarks/README.md``)."""
