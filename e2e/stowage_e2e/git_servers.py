"""Git servers on test hosts: `git daemon` (git://), and git's smart HTTP behind Basic auth.

    server = GitServer.start(host, root)                 # git://<host>/<repository>
    server = GitServer.start(host, root, password="pw")  # http://<host>:8080/<repository>,
                                                         # user `robot` with that password
    work = server.create("site.git")                     # a bare repository and its author
    server.commit(work, "index.html", "one\\n")          # committed and pushed
    server.stop()

The HTTP server is this module run as a program inside the host (`python -m
stowage_e2e.git_servers ROOT ADDRESS PORT`, the password on stdin): it refuses requests
without the credentials (401, as a hosting service does) and hands the others to
`git http-backend` as CGI.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stowage_e2e.hosts import TestHost
from stowage_e2e.servers import wait_for_port

GIT_PORT = 9418
HTTP_PORT = 8080
HTTP_USER = "robot"
IDENTITY = {
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@example.com",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@example.com",
}


def git(*arguments: str) -> None:
    subprocess.run(
        ["git", *arguments], check=True, capture_output=True, env={**os.environ, **IDENTITY}
    )


@dataclass
class GitServer:
    host: TestHost
    root: Path
    process: subprocess.Popen[bytes]
    password: str | None = None

    @classmethod
    def start(cls, host: TestHost, root: Path, password: str | None = None) -> GitServer:
        root.mkdir(parents=True, exist_ok=True)
        if password is None:
            command = [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                f"--base-path={root}",
                f"--listen={host.ip}",
                f"--port={GIT_PORT}",
                str(root),
            ]
            process = host.popen(command)
            port = GIT_PORT
        else:
            command = [sys.executable, "-m", "stowage_e2e.git_servers", str(root), host.ip]
            environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            process = host.popen([*command, str(HTTP_PORT)], stdin=subprocess.PIPE, env=environment)
            assert process.stdin is not None
            process.stdin.write(password.encode())
            process.stdin.close()
            port = HTTP_PORT
        wait_for_port(host, port)
        return cls(host, root, process, password)

    def url(self, repository: str) -> str:
        if self.password is None:
            return f"git://{self.host.ip}/{repository}"
        return f"http://{self.host.ip}:{HTTP_PORT}/{repository}"

    def create(self, repository: str) -> Path:
        """A new bare repository (branch main) and a working copy that commits into it."""
        bare = self.root / repository
        work = self.root.parent / f"{self.root.name}-{repository}-author"
        git("init", "--quiet", "--bare", "-b", "main", str(bare))
        git("-C", str(bare), "config", "http.receivepack", "false")
        git("init", "--quiet", "-b", "main", str(work))
        git("-C", str(work), "remote", "add", "origin", str(bare))
        return work

    def commit(self, work: Path, name: str, text: str) -> None:
        (work / name).write_text(text)
        git("-C", str(work), "add", name)
        git("-C", str(work), "commit", "--quiet", "-m", f"{name}: {text.strip()}")
        git("-C", str(work), "push", "--quiet", "origin", "main")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class BasicAuthGit(BaseHTTPRequestHandler):
    root = ""
    expected = ""  # the Authorization header a request must carry

    def do_GET(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def serve(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_USER": HTTP_USER,
            "REMOTE_ADDR": self.client_address[0],
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        result = subprocess.run(
            ["git", "http-backend"],
            input=self.rfile.read(length),
            capture_output=True,
            env=environment,
            check=False,
        )
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line]
        status = next((int(value.split()[0]) for key, value in headers if key == "Status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key != "Status":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_http(root: str, address: str, port: int, password: str) -> None:
    token = base64.b64encode(f"{HTTP_USER}:{password}".encode()).decode()
    BasicAuthGit.root = root
    BasicAuthGit.expected = f"Basic {token}"
    ThreadingHTTPServer((address, port), BasicAuthGit).serve_forever()


if __name__ == "__main__":
    serve_http(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.stdin.read())
