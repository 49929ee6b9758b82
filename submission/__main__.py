from submission.cli import main

raise SystemExit(main())
