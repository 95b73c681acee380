from geoproxy.runtime.cli import main

raise SystemExit(main())
