from pointtal.cli import main

raise SystemExit(main())
