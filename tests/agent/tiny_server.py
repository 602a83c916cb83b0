"""A tiny HTTP server the agent tests start as a real service process (stdlib only).

GET /health → 200; GET /env?key=K → the value of $K; GET /status/N → status N;
POST /echo → the request body back; --child-ignores-term forks a child that ignores SIGTERM
(its pid is printed); --ignore-term makes the server itself ignore SIGTERM.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/health":
            self._send(200, json.dumps({"status": "ok"}))
        elif url.path == "/env":
            self._send(200, os.environ.get(query["key"][0], ""))
        elif url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), "status page")
        elif url.path == "/slow":
            time.sleep(5)
            self._send(200, "late")
        else:
            self._send(404, "no such page")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        ctype = self.headers.get("Content-Type", "")
        self._send(200, json.dumps({"path": self.path, "body": body, "content_type": ctype}))

    def log_message(self, fmt, *args):
        sys.stdout.write("request " + (fmt % args) + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tag", default="")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--child-ignores-term", action="store_true")
    args = parser.parse_args()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.child_ignores_term:
        code = (
            "import signal,time;signal.signal(signal.SIGTERM,signal.SIG_IGN);"
            "print('child ready',flush=True);time.sleep(600)"
        )
        child = subprocess.Popen([sys.executable, "-c", code])
        print("child pid %d" % child.pid, flush=True)
    print("tag=%s" % args.tag, flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
