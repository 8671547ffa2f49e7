"""A tiny task for orchestrator tests: an HTTP server whose /health can be made to fail, and that reports
itself.

Run as ``python task_server.py PORT [--spawn-child] [--ignore-term]``. It writes ``info-<pid>.json`` (pid,
argv, the NOMAD_* environment, child pid) into ``$NOMAD_TASK_DIR``; /health answers 500 while the file named
by ``$HEALTH_FAIL_FILE`` exists, else 200.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        fail = os.environ.get("HEALTH_FAIL_FILE")
        status = 500 if fail and Path(fail).exists() else 200
        body = b"unhealthy" if status == 500 else b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1])
    child = None
    if "--spawn-child" in sys.argv:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    info = {
        "pid": os.getpid(),
        "started": time.time(),
        "pgid": os.getpgid(0),
        "child": child.pid if child else None,
        "argv": sys.argv[1:],
        "env": {k: v for k, v in os.environ.items() if k.startswith(("NOMAD_", "FLEETMIND_TEST"))},
    }
    task_dir = Path(os.environ.get("NOMAD_TASK_DIR", "."))
    (task_dir / f"info-{os.getpid()}.json").write_text(json.dumps(info))
    print(f"serving on {port}", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
