from submission.cli.main import main

raise SystemExit(main())
