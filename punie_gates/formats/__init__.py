"""The data formats the suite reads and writes, with no model loaded: Punie's Qwen3 chat
with Code Mode calls (`qwen3.py`), the converter to Mistral's structured form and back
(`to_mistral.py`, `to_qwen3.py`; the turns and rules both share in `turns.py`, lines read
and rejected in `records.py`), stratified sampling (`sampling.py`), tool calls in a model's reply parsed
with mlx-lm's parsers (`tool_calls.py`), the static analysis of Code Mode code
(`code_analysis.py`, never executed) and the offline tekken reference (`tekken.py`).

Imports inputs/ and errors only.
"""
