"""A tiny service for the systemd supervisor tests (stdlib only; run by systemd as a unit).

GET /health → 200; GET /env?key=K → $K; GET /argv → the argv as JSON; GET /cwd → its working
directory; GET /pids → the pids of this server and its child as JSON. ``--child`` forks a child
that ignores SIGTERM (only a cgroup KILL ends it); ``--exit N`` exits at once with status N (a
crash loop under Restart=on-failure).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHILD = []


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/health":
            self._send(200, "ok")
        elif url.path == "/env":
            self._send(200, os.environ.get(urllib.parse.parse_qs(url.query)["key"][0], "<unset>"))
        elif url.path == "/argv":
            self._send(200, json.dumps(sys.argv[1:]))
        elif url.path == "/cwd":
            self._send(200, os.getcwd())
        elif url.path == "/pids":
            self._send(200, json.dumps([os.getpid()] + CHILD))
        else:
            self._send(404, "no such page")

    def log_message(self, fmt, *args):
        print("request " + (fmt % args), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit", type=int, default=None)
    parser.add_argument("--child", action="store_true")
    args, _ = parser.parse_known_args()
    if args.exit is not None:
        print("exiting with %d" % args.exit, flush=True)
        sys.exit(args.exit)
    if args.child:
        code = "import signal,time;signal.signal(signal.SIGTERM,signal.SIG_IGN);time.sleep(600)"
        CHILD.append(subprocess.Popen([sys.executable, "-c", code]).pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("serving on %d" % args.port, flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
