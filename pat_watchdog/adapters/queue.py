"""The fan-out queue in the AzureWebJobsStorage account (docs/reference.md, "Many instances")."""

from __future__ import annotations

from datetime import datetime

from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.errors import WatchdogError
from pat_watchdog.core.fanout import message
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.settings import Settings

# The doctor's message names a site in no subscription, so that the queue trigger, should it ever
# see one, ignores it as not a target (core/fanout.py); it is sent invisible and deleted at once.
PROBE_APP = ResourceId("00000000-0000-0000-0000-000000000000", "pat-watchdog-doctor", "doctor")
PROBE_HIDDEN = 60   # seconds the message stays invisible to the trigger


def queue_client(settings: Settings, credential, retry: RetryPolicy, name: str | None = None):
    """The fan-out queue in the AzureWebJobsStorage account; base64 text, as the Functions host expects."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    storage = settings.storage
    if storage is None or not (storage.connection_string or storage.queue_endpoint):
        raise WatchdogError("WATCHDOG_FANOUT_QUEUE is set but AzureWebJobsStorage is not")
    name = name or settings.fanout_queue
    codecs = dict(message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy())
    if storage.connection_string:
        return QueueClient.from_connection_string(storage.connection_string, name, **codecs, **retry.sdk_kwargs())
    return QueueClient(storage.queue_endpoint, name, credential=credential, **codecs, **retry.sdk_kwargs())


def enqueue(settings: Settings, targets: list[ResourceId], now: datetime, credential, retry: RetryPolicy) -> int:
    """One message per instance; returns how many were queued."""
    from azure.core.exceptions import AzureError, ResourceExistsError

    client = queue_client(settings, credential, retry)
    try:
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        for app in targets:
            client.send_message(message(app, now))
    except AzureError as error:
        raise service_error("Queue storage", error, "queueing instances") from None
    finally:
        client.close()
    return len(targets)


def probe(settings: Settings, credential, retry: RetryPolicy, now: datetime) -> str:
    """The doctor's round trip: peek, send one message and delete it; raises ServiceError naming the step."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    client = queue_client(settings, credential, retry)
    step, done = f"peeking at {settings.fanout_queue}", "peeked"
    try:
        try:
            client.peek_messages(max_messages=1)
        except ResourceNotFoundError:
            step = f"creating {settings.fanout_queue}"
            client.create_queue()
            done = "created the queue (it did not exist yet)"
        step = f"sending a doctor message to {settings.fanout_queue}"
        sent = client.send_message(message(PROBE_APP, now), visibility_timeout=PROBE_HIDDEN)
        step = f"deleting the doctor message from {settings.fanout_queue}"
        client.delete_message(sent)
    except AzureError as error:
        raise service_error("Queue storage", error, step) from None
    finally:
        client.close()
    return f"{done}, sent a doctor message and deleted it"
