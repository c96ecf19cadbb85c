"""What the gates judge: Gate 0's tokenizer checks (`tokenizer/`), Gate 1's smoke test
(`smoke.py`), honest scoring of replies (`scoring.py`: tools called, fields read), the
category judgment over many (`judgment.py`), the answer after the tool results (`followup.py`) and the training
gates' multi-turn pass over it (`multiturn.py`), the steps and judgments Gates 2-5 share
(`steps.py`), the generation bench (`bench.py`) and the checks of a run's settings and
inputs made before anything heavy runs (`preflight.py`).

Imports answering/, model/, formats/, inputs/, stats and errors; never pytest.
"""
