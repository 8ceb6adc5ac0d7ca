from otlp_router.cli import main

raise SystemExit(main())
