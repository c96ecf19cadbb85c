"""What the user hands the suite, read and checked: options (the table in `option_table.py`: flags,
ini keys, environment; resolved once by `options.resolve_options`; an endpoint URL checked in
`endpoint_spec.py`), the gate registry (`gates.py`, data/gates.toml)
and its typed, checked settings (`settings.py`), the validation queries, the tool catalog, and where data and caches live (`paths.py`).

Imports only `punie_gates.errors` and each other.
"""
