from unirex.cli import main

raise SystemExit(main())
