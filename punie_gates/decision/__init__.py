"""From gate outcomes to a verdict and its report: a gate's status from its tests
(`outcomes.py`), the seed's decision matrix (`verdict.py`), the typed report and its
JSON, markdown and terminal forms (`report.py`), and small-sample statistics
(`stats.py`: Wilson intervals, the exact McNemar test).

Imports inputs/ and errors; never pytest.
"""
