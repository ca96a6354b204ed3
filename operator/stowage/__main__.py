from stowage.cli import main

raise SystemExit(main())
