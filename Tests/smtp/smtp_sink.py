#!/usr/bin/env python3
"""An SMTP relay for the notification tests (aiosmtpd): writes each accepted message to a folder as JSON.

    smtp_sink.py FOLDER [--user NAME --password SECRET] [--exclude-plain] [--tls CERT KEY]

Binds a free loopback port and writes it to FOLDER/port; each message goes to FOLDER/<n>.json with its envelope
(mail_from, rcpt_tos), the login that authenticated (or null) and the DATA as received (dot-stuffing undone).
A recipient whose address starts with "nobody@" is refused with 550. STARTTLS is offered only with --tls, and
then AUTH only after it. Runs until killed.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            number = self.count
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "data": envelope.original_content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.folder, "%d.json" % number)
        with open(path + ".tmp", "w") as file:
            json.dump(record, file)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--exclude-plain", action="store_true")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    options = parser.parse_args()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == options.user \
            and auth_data.password.decode() == options.password
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    extra = {}
    if options.user:
        extra = dict(authenticator=authenticate, auth_required=True, auth_require_tls=bool(options.tls))
        if options.exclude_plain:
            extra["auth_exclude_mechanism"] = ["PLAIN"]
    if options.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.tls[0], options.tls[1])
        extra["tls_context"] = context
    # A free port, found by binding port 0 (aiosmtpd cannot start on port 0 itself); another taker is retried.
    for attempt in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(Sink(options.folder), hostname="127.0.0.1", port=port, **extra)
        try:
            controller.start()
            break
        except Exception:
            if attempt == 4:
                raise
    with open(os.path.join(options.folder, "port.tmp"), "w") as file:
        file.write(str(port))
    os.rename(os.path.join(options.folder, "port.tmp"), os.path.join(options.folder, "port"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
