"""`python -m punie_gates`: the `punie-gates` command."""

from punie_gates.commands import main

raise SystemExit(main())
