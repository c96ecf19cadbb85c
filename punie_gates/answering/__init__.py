"""Asking a model the validation queries, one way chosen once per run (`answerer.py`).

Prompts go through the model's own chat template (`prompts.py`). In-process: greedy
generation with a shared-prefix cache and batching (`inprocess.py`). Through
`mlx_lm.server`, as Punie's agent asks: the process (`server.py`; its process group in
`process_group.py`, its watch in `server_watch.py`), the OpenAI client (`client.py`),
one server at a time for the gates (`serving.py`), in production's
environment (`environment.py`), served as the serving plan says (`plan.py`, from
`serving_probe.py` run by the serving interpreter); tool parsing (`tool_parsing.py`),
timing batches (`concurrency.py`), one answer form for both paths (`answers.py`) and
multi-turn conversations (`conversation.py`) live here too.

Imports model/, formats/, inputs/ and errors only.
"""
