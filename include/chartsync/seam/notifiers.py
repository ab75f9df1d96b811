"""Alert channels: delivery of one alert to every switched-on channel.

Channels are the providers' notifiers: Slack (``SlackWebhookNotifier``), e-mail (``SmtpNotifier``)
and the webhook (the http provider's ``HttpNotifier``: POST JSON). Which ones are on, and the
connections they use, are Airflow Variables (see docs/operating/alerts.md):

- ``chartsync_alert_channels``: comma-separated subset of ``webhook,slack,email`` (empty: none;
  alerts are still recorded in ``chart_sync_alert``);
- ``chartsync_alert_webhook_conn_id`` (http), ``chartsync_alert_slack_conn_id`` (slackwebhook),
  ``chartsync_alert_smtp_conn_id`` (smtp): connection ids, defaults below;
- ``chartsync_alert_email_to`` (comma-separated recipients), ``chartsync_alert_email_from``.

Delivery runs in a task (failure callback, digest), in the triggerer (deadline callbacks) or in
a plain process (tests, CLI): connections and variables are looked up the way that works there.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.sdk import BaseNotifier

from chartsync.seam.connections import get_variable
from chartsync.seam.http import LookupHttpHook
from chartsync.settings import (
    ALERT_CHANNELS_VARIABLE,
    ALERT_CONN_ID_VARIABLES,
    ALERT_EMAIL_FROM_VARIABLE,
    ALERT_EMAIL_TO_VARIABLE,
)

log = logging.getLogger(__name__)

WEBHOOK, SLACK, EMAIL = "webhook", "slack", "email"
CHANNELS = (WEBHOOK, SLACK, EMAIL)
SENT = "sent"
TIMEOUT_SECONDS = 10


def parse_channels(value: str | None) -> list[str]:
    """``"webhook, slack,email"`` -> ["webhook", "slack", "email"] (order kept, duplicates dropped)."""
    names: list[str] = []
    for part in (value or "").replace(";", ",").split(","):
        name = part.strip().lower()
        if name and name not in names:
            names.append(name)
    return names


class WebhookNotifier(HttpNotifier):
    """The http provider's ``HttpNotifier`` on ``LookupHttpHook``: its connection lookup also works
    outside tasks (the CLI, the plugin's listeners), as the webhook's always has."""

    @cached_property
    def hook(self) -> HttpHook:
        return LookupHttpHook(method=self.method, http_conn_id=self.http_conn_id)


def _slack(title: str, text: str, payload: Mapping[str, Any]) -> BaseNotifier:
    # deferred: the slack provider loads only when the channel is on (the alert path runs in every DAG's callbacks)
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    conn_id = get_variable(*ALERT_CONN_ID_VARIABLES[SLACK])
    return SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=f"*{title}*\n{text}",
                                timeout=TIMEOUT_SECONDS)


def _email(title: str, text: str, payload: Mapping[str, Any]) -> BaseNotifier:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier  # deferred: as the slack provider above

    recipients = [r.strip() for r in (get_variable(ALERT_EMAIL_TO_VARIABLE) or "").split(",") if r.strip()]
    if not recipients:
        raise ValueError(f"no recipients: set the Airflow Variable {ALERT_EMAIL_TO_VARIABLE}")
    body = "<br>\n".join(html.escape(line) for line in text.splitlines())
    return SmtpNotifier(to=recipients, from_email=get_variable(ALERT_EMAIL_FROM_VARIABLE), subject=title,
                        html_content=f"<p>{body}</p>", smtp_conn_id=get_variable(*ALERT_CONN_ID_VARIABLES[EMAIL]))


def _webhook(title: str, text: str, payload: Mapping[str, Any]) -> BaseNotifier:
    # the payload as a JSON document, POSTed to the http connection's URL: its host (https://hooks.example.com),
    # optional login and password (basic auth) and extra headers, as for any HttpHook
    return WebhookNotifier(http_conn_id=get_variable(*ALERT_CONN_ID_VARIABLES[WEBHOOK]), json=dict(payload),
                           headers={"Content-Type": "application/json"},
                           extra_options={"timeout": TIMEOUT_SECONDS, "check_response": True})


BUILDERS: dict[str, Callable[[str, str, Mapping[str, Any]], BaseNotifier]] = {
    WEBHOOK: _webhook, SLACK: _slack, EMAIL: _email,
}


def deliver(title: str, text: str, payload: Mapping[str, Any],
            channels: list[str] | None = None) -> dict[str, str]:
    """Send one alert to every switched-on channel; each channel's outcome, failures included.

    A channel that fails is logged and reported as ``"failed: ..."``: it never stops the others.
    """
    names = parse_channels(get_variable(ALERT_CHANNELS_VARIABLE, "")) if channels is None else channels
    outcome: dict[str, str] = {}
    for name in names:
        builder = BUILDERS.get(name)
        if builder is None:
            log.error("chart-sync: unknown alert channel %r in %s (use %s)", name, ALERT_CHANNELS_VARIABLE,
                      ",".join(CHANNELS))
            outcome[name] = "failed: unknown channel"
            continue
        try:
            # notify() directly: the texts are final, not Jinja templates to render against a context
            builder(title, text, payload).notify({"alert": dict(payload)})
            outcome[name] = SENT
        except Exception as exc:
            log.warning("chart-sync: alert channel %s failed: %s", name, exc, exc_info=True)
            outcome[name] = f"failed: {type(exc).__name__}: {exc}"[:500]
    return outcome
