from punie_gates.cli import main

raise SystemExit(main())
