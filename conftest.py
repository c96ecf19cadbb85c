# The gates' options, fixtures, markers and verdict live in the punie_gates
# plugin; pytester is for the self-tests that run the gates end to end.
pytest_plugins = ["punie_gates.plugin", "pytester"]
