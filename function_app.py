"""Azure Functions entry points (Python v2 model); each calls one function of the package."""

import azure.functions as func

from pat_watchdog import functions

app = func.FunctionApp()


@app.timer_trigger(schedule="%WATCHDOG_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def watchdog_timer(timer: func.TimerRequest) -> None:
    """The daily run: observe, decide, act; raises when an action failed (a failed invocation)."""
    functions.on_timer(past_due=timer.past_due)
