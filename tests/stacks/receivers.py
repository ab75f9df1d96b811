"""Local receivers for the alert channels: a webhook/Slack endpoint and an SMTP server."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Received:
    path: str
    body: bytes

    def json(self):
        return json.loads(self.body)


class AlertReceiver:
    """A tiny HTTP server that records every POST; paths starting with /fail answer 500."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[Received] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(Received(self.path, body))
                status = 500 if self.path.startswith("/fail") else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self, path_prefix: str = "/") -> list[Received]:
        return [r for r in list(self.received) if r.path.startswith(path_prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """Just enough SMTP (no TLS, no auth) to accept and keep messages, for the e-mail channel."""

    def __init__(self) -> None:
        import socketserver
        import threading

        messages: list[str] = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 localhost chart-sync test SMTP\r\n")
                data, lines = False, []
                for line in iter(self.rfile.readline, b""):
                    if data:
                        if line.rstrip(b"\r\n") == b".":
                            messages.append(b"".join(lines).decode("utf-8", "replace"))
                            data, lines = False, []
                            self.wfile.write(b"250 OK\r\n")
                        else:
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        continue
                    verb = line[:4].upper()
                    if verb == b"DATA":
                        data = True
                        self.wfile.write(b"354 end with <CRLF>.<CRLF>\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                        self.wfile.write(b"250 OK\r\n")

        self.messages = messages
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def conn_json(self, from_email: str = "chart-sync@example.com") -> str:
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                                     "timeout": 10, "retry_limit": 0}})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alert_channel_env(receiver: AlertReceiver, smtp: SmtpReceiver | None = None,
                      channels: str = "webhook,slack") -> dict[str, str]:
    """Env vars that point the alert channels at the local receivers (webhook -> /webhook, Slack -> /slack)."""
    env = {
        "AIRFLOW_VAR_CHARTSYNC_ALERT_CHANNELS": channels,
        "AIRFLOW_CONN_CHARTSYNC_ALERT_WEBHOOK": json.dumps({"conn_type": "http", "host": f"{receiver.url}/webhook"}),
        "AIRFLOW_CONN_CHARTSYNC_ALERT_SLACK": json.dumps({"conn_type": "slackwebhook",
                                                          "password": f"{receiver.url}/slack"}),
    }
    if smtp is not None:
        env["AIRFLOW_CONN_CHARTSYNC_ALERT_SMTP"] = smtp.conn_json()
        env["AIRFLOW_VAR_CHARTSYNC_ALERT_EMAIL_TO"] = "ops@example.com, charts@example.com"
    return env


