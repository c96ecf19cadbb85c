"""Typed results: each gate's figures as frozen dataclasses (a docstring per field, which
docs/report.md is generated from), the typed gate-report.json around them, and the codec
between them and JSON. A low layer: checks may build these values and decision reads them.

Start at `document.py` (`read_results`, `RunResults`, `FIGURES_BY_GATE`); `shared.py` and
`queries.py` hold the values several gates share; `gate0.py` .. `training.py` each gate's own.
"""
