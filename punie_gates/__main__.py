from punie_gates.commands import main

raise SystemExit(main())
