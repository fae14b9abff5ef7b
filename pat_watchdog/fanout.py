"""Fan-out (README, "Many instances"): the timer enqueues one message per instance; a queue trigger runs each."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from pat_watchdog.errors import ServiceError, WatchdogError
from pat_watchdog.http import RetryPolicy
from pat_watchdog.reasons import format_time
from pat_watchdog.resource_ids import ResourceId, parse_resource_id
from pat_watchdog.settings import Settings


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


def message(app: ResourceId, now: datetime) -> str:
    """What a message carries: the instance's resource ID and when it was queued; nothing secret."""
    return json.dumps({"app": str(app), "queued_at": format_time(now)})


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
        raise ServiceError("Queue storage", f"queueing instances: {type(error).__name__}") from None
    finally:
        client.close()
    return len(targets)


def settings_for(settings: Settings, body: str) -> Settings:
    """The run's settings narrowed to the one instance a message names."""
    try:
        app = parse_resource_id(json.loads(body)["app"])
    except (ValueError, KeyError, TypeError) as error:
        raise WatchdogError(f"a fan-out message is not {{\"app\": <site resource ID>}}: {error}") from None
    if not app.is_site:
        raise WatchdogError("a fan-out message must name a site, not a scope")
    return replace(settings, targets=(app,))
