import sys

from pat_watchdog.cli import main

sys.exit(main())
