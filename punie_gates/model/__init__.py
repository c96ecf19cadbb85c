"""Models on disk and in memory: naming a candidate (`candidate.py`), reading a model folder
without loading it (`folder.py`: config, bits, size, memory estimate), quantizing to the
target bits (`quantize.py`), loading and releasing (`loading.py`), its tokenizer
(`tokenizer.py`), LoRA training (`training.py`), fusion and retention (`fusion.py`), the
offline demo candidate (`demo.py`) and the work folder's cached artifacts (`artifacts.py`).

Imports formats/, inputs/ and errors only.
"""
