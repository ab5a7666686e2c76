"""Command-line programs (installed as the package caffelite_tools; `caffelite` runs main.main)."""

# Imported before anything loads numpy, so that caffelite's BLAS settings (caffelite/__init__.py) take effect.
import caffelite  # noqa: F401
