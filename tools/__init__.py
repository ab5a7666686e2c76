"""Command-line programs (installed as the package caffelite_tools; `caffelite` runs main.main)."""
