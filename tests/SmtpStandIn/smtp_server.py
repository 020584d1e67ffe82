#!/usr/bin/python3
"""A real SMTP server on loopback for the email tests (Debian's python3-aiosmtpd).

Usage: smtp_server.py <maildir> [port]   (port 0 or absent: a free one)
Prints "LISTENING <port>" once it accepts connections, then serves until killed or stdin closes.
Every accepted message is written to <maildir>/<n>.eml (the raw DATA) with <n>.json (envelope).
Behaviour is chosen by the recipient's local part, so one server serves every test:
  tempfail-once@...  RCPT answers 451 the first time for that address, 250 afterwards
  tempfail@...       RCPT always answers 451
  reject@...         RCPT answers 550 5.1.1 user unknown
  rejectdata@...     the end of DATA answers 554 5.7.1 message refused
  drop@...           the connection is closed after the message data arrived, with no reply
Each event is appended to <maildir>/log.ndjson.
"""
import asyncio
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, maildir):
        self.maildir = maildir
        self.count = 0
        self.tempfailed = set()

    def log(self, **event):
        with open(os.path.join(self.maildir, "log.ndjson"), "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.log(event="ehlo", peer=list(session.peer)[:2])
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "tempfail-once" and address not in self.tempfailed:
            self.tempfailed.add(address)
            self.log(event="rcpt", address=address, reply=451)
            return "451 4.7.1 Greylisted, try again later"
        if local == "tempfail":
            self.log(event="rcpt", address=address, reply=451)
            return "451 4.3.0 Temporary failure"
        if local == "reject":
            self.log(event="rcpt", address=address, reply=550)
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        self.log(event="rcpt", address=address, reply=250)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpts = [a.split("@", 1)[0].lower() for a in envelope.rcpt_tos]
        self.count += 1
        n = self.count
        if "drop" in rcpts:
            self.log(event="data", n=n, reply="dropped")
            server.transport.close()
            return "421 closing"  # never reaches the client: the transport is closed
        if "rejectdata" in rcpts:
            self.log(event="data", n=n, reply=554)
            return "554 5.7.1 Message refused by policy"
        raw = envelope.original_content or envelope.content
        with open(os.path.join(self.maildir, "%d.eml" % n), "wb") as f:
            f.write(raw if isinstance(raw, bytes) else raw.encode("utf-8"))
        with open(os.path.join(self.maildir, "%d.json" % n), "w", encoding="utf-8") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        self.log(event="data", n=n, reply=250)
        return "250 2.0.0 Ok: queued as %d" % n


async def main(maildir, port):
    os.makedirs(maildir, exist_ok=True)
    handler = Handler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="smtp.test", decode_data=False), "127.0.0.1", port)
    port = server.sockets[0].getsockname()[1]
    print("LISTENING %d" % port, flush=True)
    stdin_closed = loop.create_future()

    def on_stdin():
        if not sys.stdin.buffer.read1(1) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
