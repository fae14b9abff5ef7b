"""Azure Functions entry points (Python v2 model); each calls one function of the package."""

import os

import azure.functions as func

from pat_watchdog import functions

app = func.FunctionApp()


@app.timer_trigger(schedule="%WATCHDOG_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def watchdog_timer(timer: func.TimerRequest) -> None:
    """The daily run (or, with WATCHDOG_FANOUT_QUEUE, queueing one message per instance)."""
    functions.on_timer(past_due=timer.past_due)


@app.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def watchdog_status(req: func.HttpRequest) -> func.HttpResponse:
    """The last run's report, for dashboards and uptime checks; the status page for a browser."""
    status, body, headers = functions.last_report(req.headers.get("Accept"), req.params.get("format"))
    return func.HttpResponse(body, status_code=status, headers=headers, mimetype=headers["Content-Type"].split(";")[0])


@app.route(route="doctor", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def watchdog_doctor(req: func.HttpRequest) -> func.HttpResponse:
    """Checks every permission and setting; azure.yaml's postdeploy hook calls it after each deployment."""
    status, body, mimetype = functions.doctor(req.params.get("sendTest"), req.params.get("format"))
    return func.HttpResponse(body, status_code=status, mimetype=mimetype)


# Queue triggers exist only with fan-out: an unresolved %setting% would stop the whole app.
if os.environ.get("WATCHDOG_FANOUT_QUEUE"):
    @app.queue_trigger(arg_name="msg", queue_name="%WATCHDOG_FANOUT_QUEUE%", connection="AzureWebJobsStorage")
    def watchdog_instance(msg: func.QueueMessage) -> None:
        """One instance; failures are retried by the host, then moved to the poison queue."""
        functions.on_queue_message(msg.get_body().decode("utf-8"), dequeue_count=msg.dequeue_count or 1)

    @app.queue_trigger(arg_name="msg", queue_name="%WATCHDOG_FANOUT_QUEUE%-poison", connection="AzureWebJobsStorage")
    def watchdog_instance_poison(msg: func.QueueMessage) -> None:
        """An instance that kept failing: alert once."""
        functions.on_poison_message(msg.get_body().decode("utf-8"))
