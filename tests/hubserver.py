"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1, for huggingface_hub's real client.

Repos are folders ``root/<org>/<name>/``. It serves what ``hf_hub_download`` and
``snapshot_download`` ask for (repo info, the file tree, ``/{repo}/resolve/{rev}/{file}``
with HEAD and GET) and what ``create_repo`` and ``upload_folder`` send (repo creation,
preupload (every file "regular", so no LFS), the NDJSON commit), writing committed files
into the repo folder. Every request is recorded with its Authorization header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` goes into ``HF_ENDPOINT``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str, str | None]] = []
        self.commits: list[dict] = []
        self.created: list[dict] = []
        self.validated: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _record(self) -> str:
                path = unquote(urlparse(self.path).path)
                server.requests.append((self.command, path, self.headers.get("Authorization")))
                return path

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head=False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, data, status: int = 200) -> None:
                self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

            def _not_found(self, what: str = "Repository") -> None:
                code = "RepoNotFound" if what == "Repository" else "EntryNotFound"
                self._send(404, json.dumps({"error": f"{what} not found"}).encode(), {"X-Error-Code": code})

            def _repo(self, parts: list[str]) -> Path | None:
                folder = server.root / parts[0] / parts[1]
                return folder if folder.is_dir() else None

            def _files(self, folder: Path) -> list[Path]:
                return sorted(p for p in folder.rglob("*") if p.is_file())

            def _resolve(self, head: bool) -> None:
                path = self._record()
                parts = path.strip("/").split("/")
                # /{org}/{name}/resolve/{rev}/{file...}
                folder = self._repo(parts)
                if folder is None:
                    return self._not_found()
                file = folder.joinpath(*parts[4:])
                if not file.is_file():
                    return self._not_found("Entry")
                data = file.read_bytes()
                etag = hashlib.sha1(data).hexdigest()  # noqa: S324 - a stand-in for git's blob id
                self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}, head=head)

            def do_HEAD(self) -> None:
                self._resolve(head=True)

            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path)
                parts = path.strip("/").split("/")
                if parts[:2] != ["api", "models"]:
                    return self._resolve(head=False)
                self._record()
                folder = self._repo(parts[2:4])
                if folder is None:
                    return self._not_found()
                files = self._files(folder)
                if len(parts) > 5 and parts[4] == "revision":
                    return self._json(
                        {
                            "id": f"{parts[2]}/{parts[3]}",
                            "sha": COMMIT,
                            "private": False,
                            "siblings": [{"rfilename": p.relative_to(folder).as_posix()} for p in files],
                        }
                    )
                if len(parts) > 5 and parts[4] == "tree":
                    return self._json(
                        [
                            {
                                "type": "file",
                                "oid": hashlib.sha1(p.read_bytes()).hexdigest(),  # noqa: S324
                                "size": p.stat().st_size,
                                "path": p.relative_to(folder).as_posix(),
                            }
                            for p in files
                        ]
                    )
                return self._not_found("Entry")

            def do_POST(self) -> None:
                path = self._record()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = path.strip("/").split("/")
                if parts == ["api", "repos", "create"]:
                    request = json.loads(body)
                    repo_id = f"{request.get('organization') or 'user'}/{request['name']}"
                    if "/" in request["name"]:
                        repo_id = request["name"]
                    (server.root / repo_id).mkdir(parents=True, exist_ok=True)
                    server.created.append(request)
                    return self._json({"url": f"{server.url}/{repo_id}", "name": repo_id, "id": repo_id})
                if parts == ["api", "validate-yaml"]:
                    server.validated.append(json.loads(body)["content"])
                    return self._json({"errors": [], "warnings": []})
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
                    request = json.loads(body)
                    return self._json(
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in request["files"]
                            ]
                        }
                    )
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
                    folder = server.root / parts[2] / parts[3]
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    written = {}
                    for line in lines:
                        if line.get("key") == "file":
                            value = line["value"]
                            content = base64.b64decode(value["content"])
                            target = folder / value["path"]
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(content)
                            written[value["path"]] = content
                    server.commits.append(
                        {"repo": f"{parts[2]}/{parts[3]}", "lines": lines, "files": written}
                    )
                    return self._json(
                        {
                            "commitUrl": f"{server.url}/{parts[2]}/{parts[3]}/commit/{COMMIT}",
                            "commitOid": COMMIT,
                        }
                    )
                return self._not_found("Entry")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> HubServer:
        """Serve in a background thread. :return: self."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
