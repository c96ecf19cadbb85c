"""From gate outcomes to a verdict and its report: a gate's status from its tests
(`outcomes.py`), the seed's decision matrix (`verdict.py`), the typed report and its
JSON, markdown and terminal forms (`report.py`), the report folder one run holds
(`report_folder.py`: its lock, the previous run's files moved aside, run.json), and
small-sample statistics (`stats.py`: Wilson intervals, the exact McNemar test).

Imports inputs/, errors, progress and model.artifacts (its lock folder); never pytest.
"""
