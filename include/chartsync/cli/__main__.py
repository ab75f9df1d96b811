import sys

from chartsync.cli.main import main

sys.exit(main())
