from pat_watchdog.cli import entry

entry()
