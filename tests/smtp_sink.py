"""A small SMTP server for tests/test_tasks.py, run in a python:3.13-slim container on the
stack's network: STARTTLS with the test's certificate (production mail is TLS only), the first
SMTP_FAILS messages refused at MAIL FROM with a temporary error (451, as a busy server says),
every message after that printed to stdout between markers for the test to read in the logs.
Only MAIL commands count: the health check's bare connections do not."""

import os
import socketserver
import ssl
import threading

FAILS = int(os.environ.get("SMTP_FAILS", "0"))
CONTEXT = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
CONTEXT.load_cert_chain("/sink/smtp.pem", "/sink/smtp.key")
lock = threading.Lock()
attempts = 0  # MAIL commands so far


def log(text):
    with lock:
        print(text, flush=True)


class Session(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            self.converse()
        except (ConnectionError, ssl.SSLError):
            pass  # a client gone mid-way (the health check connects and leaves)

    def converse(self):
        global attempts
        connection, secure, number = self.request, False, None
        lines = connection.makefile("rb")

        def reply(*texts):
            connection.sendall("".join(f"{text}\r\n" for text in texts).encode())

        reply("220 sink ESMTP")
        while line := lines.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-sink", "250-8BITMIME", *(() if secure else ("250-STARTTLS",)),
                      "250 SMTPUTF8")
            elif verb == "STARTTLS" and not secure:
                reply("220 go ahead")
                connection = CONTEXT.wrap_socket(connection, server_side=True)
                lines, secure = connection.makefile("rb"), True
            elif verb == "MAIL" and not secure:
                reply("530 5.7.0 STARTTLS first")
            elif verb == "MAIL":
                with lock:
                    attempts += 1
                    number = attempts
                if number <= FAILS:
                    log(f"REFUSED attempt {number}")
                    reply("451 4.3.0 try again later")
                else:
                    reply("250 ok")
            elif verb in ("RCPT", "RSET", "NOOP"):
                reply("250 ok")
            elif verb == "DATA":
                reply("354 end with a dot")
                body = []
                while (data := lines.readline()) not in (b".\r\n", b""):
                    text = data.decode(errors="replace").rstrip("\r\n")
                    body.append(text[1:] if text.startswith("..") else text)  # dot-stuffing
                log("\n".join([f"MESSAGE attempt {number}", *body, "END MESSAGE"]))
                reply("250 queued")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("502 not implemented")


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
with socketserver.ThreadingTCPServer(("", 2525), Session) as server:
    log("listening on 2525")
    server.serve_forever()
