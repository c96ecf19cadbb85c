"""Models on disk and in memory: naming a candidate (`candidate.py`), reading a model folder
without loading it (`folder.py`: config, bits, tensors kept), what it weighs on disk and in
memory (`sizes.py`), room on the disk (`disk.py`), quantizing to the target bits
(`quantize.py`), loading and releasing (`loading.py`), its tokenizer (`tokenizer.py`), LoRA
training (`training.py`, its loss curve in `loss_curve.py`), fusion and retention (`fusion.py`), the offline demo candidate
(`demo.py`), the demo-agent (`demo_agent.py`, its weights made by `demo_agent_recipe.py`)
and the work folder's cached artifacts (`artifacts.py`: their lifecycle, with keys in
`artifact_keys.py`, manifests in `manifest.py`, build locks in `build_locks.py` and
the damage policy in `damage.py`).

Imports formats/, inputs/ and errors only.
"""
