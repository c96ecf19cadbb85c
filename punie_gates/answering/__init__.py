"""Asking a model the validation queries: prompts through the model's own chat template
(`prompts.py`) and greedy generation in-process (`inprocess.py`: shared-prefix cache,
batching). Serving through `mlx_lm.server` (`server.py`; `serving.py`: one server at a
time for the gates), one answer form for both paths (`answers.py`) and multi-turn
conversations live here too.

Imports model/, formats/, inputs/ and errors only.
"""
