"""A stand-in for Elasticsearch and Kibana (neither can run here): the endpoints
``shorty elk setup`` uses, with their status codes and error bodies, keeping what was
PUT. Served by uvicorn on 127.0.0.1 in a thread, over TLS when given a certificate.

Kibana's routes are under ``/kibana`` (a base path, as behind an Ingress)."""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

# Component templates Elasticsearch 8.19 ships, which an index template may compose.
BUILT_IN_COMPONENTS = ("ecs@mappings", "logs@mappings", "logs@settings", "data-streams@mappings")


def es_error(status: int, kind: str, reason: str, **extra: Any) -> JSONResponse:
    error = {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}
    return JSONResponse({"error": error, "status": status}, status, headers=extra or None)


def acknowledged() -> JSONResponse:
    return JSONResponse({"acknowledged": True})


class StandIn:
    """What the stand-in holds: the configuration Shorty's setup writes, the users and
    their passwords, the data streams and every request received."""

    def __init__(self, password: str, *, es_unavailable: int = 0, kibana_unavailable: int = 0):
        self.passwords = {"elastic": password, "kibana_system": "bootstrap"}
        self.roles: dict[str, Any] = {}
        self.users: dict[str, Any] = {}
        self.config: dict[str, Any] = {}  # "ilm/<name>", "component/<name>", "index/<name>"
        self.data_streams: list[str] = []
        self.rollovers: list[str] = []
        self.saved_objects: dict[tuple[str, str], Any] = {}
        self.requests: list[tuple[str, str, str | None, bytes]] = []  # method, path, user, body
        self.es_unavailable = es_unavailable  # answers 503 to this many health checks
        self.kibana_unavailable = kibana_unavailable
        self.refuse_rollovers = 0  # answers 400 to this many rollovers (a run cut short)

    def state(self) -> dict[str, Any]:
        """Everything a setup run changes, to compare two runs."""
        return copy.deepcopy(
            {
                "config": self.config,
                "roles": self.roles,
                "users": self.users,
                "passwords": self.passwords,
                "saved_objects": self.saved_objects,
            }
        )

    def calls(self) -> list[str]:
        return [f"{method} {path}" for method, path, _, _ in self.requests]

    def app(self) -> Starlette:
        es = [
            Route("/_cluster/health", self.health),
            Route("/_ilm/policy/{name}", self.put_policy, methods=["PUT"]),
            Route("/_component_template/{name}", self.put_component, methods=["PUT"]),
            Route("/_index_template/{name}", self.index_template, methods=["GET", "PUT"]),
            Route("/_data_stream/{pattern}", self.get_data_streams),
            Route("/_security/role/{name}", self.put_role, methods=["PUT"]),
            Route("/_security/user/{name}", self.put_user, methods=["PUT"]),
            Route("/_security/user/{name}/_password", self.change_password, methods=["POST"]),
            Route("/{stream}/_rollover", self.rollover, methods=["POST"]),
        ]
        kibana = [
            Route("/api/status", self.kibana_status),
            Route("/api/saved_objects/_import", self.kibana_import, methods=["POST"]),
        ]
        return Starlette(routes=[Mount("/kibana", routes=kibana), *es])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Record the request and check the basic auth, as both servers do first."""
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        user, password = self._credentials(request)
        path = scope["path"] + (
            f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        )
        self.requests.append((scope["method"], path, user, body))

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        if user is None or self.passwords.get(user) != password:
            reason = f"unable to authenticate user [{user}] for REST request [{scope['path']}]"
            auth = 'Basic realm="security" charset="UTF-8"'
            response: Any = es_error(
                401, "security_exception", reason, **{"WWW-Authenticate": auth}
            )
            await response(scope, receive, send)
            return
        await self._app(scope, replay, send)

    @property
    def _app(self) -> Starlette:
        if not hasattr(self, "_built"):
            self._built = self.app()
        return self._built

    @staticmethod
    def _credentials(request: Request) -> tuple[str | None, str | None]:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None, None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password

    # ------------------------------------------------------------- Elasticsearch
    async def health(self, request: Request) -> Response:
        if self.es_unavailable > 0:
            self.es_unavailable -= 1
            return es_error(503, "master_not_discovered_exception", "no master yet")
        return JSONResponse({"cluster_name": "standin", "status": "green", "timed_out": False})

    async def put_policy(self, request: Request) -> Response:
        body = await request.json()
        if set(body) != {"policy"}:
            field = next(iter(set(body) - {"policy"}), "policy")
            reason = f"[put_lifecycle_request] unknown field [{field}]"
            return es_error(400, "x_content_parse_exception", reason)
        self.config[f"ilm/{request.path_params['name']}"] = body
        return acknowledged()

    async def put_component(self, request: Request) -> Response:
        body = await request.json()
        if "template" not in body:
            return es_error(400, "action_request_validation_exception", "template is missing")
        self.config[f"component/{request.path_params['name']}"] = body
        return acknowledged()

    async def index_template(self, request: Request) -> Response:
        name = request.path_params["name"]
        key = f"index/{name}"
        if request.method == "GET":
            if key not in self.config:
                reason = f"index template matching [{name}] not found"
                return es_error(404, "resource_not_found_exception", reason)
            return JSONResponse(
                {"index_templates": [{"name": name, "index_template": self.config[key]}]}
            )
        body = await request.json()
        if not body.get("index_patterns"):
            return es_error(
                400, "action_request_validation_exception", "index patterns are missing"
            )
        known = {k.split("/", 1)[1] for k in self.config if k.startswith("component/")}
        optional = set(body.get("ignore_missing_component_templates", []))
        missing = set(body.get("composed_of", [])) - known - set(BUILT_IN_COMPONENTS) - optional
        if missing:
            reason = (
                f"index_template [{name}] invalid, cause [index template [{name}] specifies "
                f"component templates {sorted(missing)} that do not exist]"
            )
            return es_error(400, "invalid_index_template_exception", reason)
        self.config[key] = body
        return acknowledged()

    async def get_data_streams(self, request: Request) -> Response:
        pattern = request.path_params["pattern"]
        names = [n for n in self.data_streams if fnmatch.fnmatchcase(n, pattern)]
        return JSONResponse({"data_streams": [{"name": n, "generation": 1} for n in names]})

    async def rollover(self, request: Request) -> Response:
        stream = request.path_params["stream"]
        if stream not in self.data_streams:
            return es_error(404, "index_not_found_exception", f"no such index [{stream}]")
        if self.refuse_rollovers:
            self.refuse_rollovers -= 1
            return es_error(400, "illegal_argument_exception", "refused by the test")
        self.rollovers.append(f"{stream}?{request.url.query}")
        return JSONResponse({"acknowledged": True, "rolled_over": False, "lazy": True})

    async def put_role(self, request: Request) -> Response:
        name = request.path_params["name"]
        created = name not in self.roles
        self.roles[name] = await request.json()
        return JSONResponse({"role": {"created": created}})

    async def put_user(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.json()
        password = body.pop("password", None)
        if password is not None and len(password) < 6:
            reason = "Validation Failed: 1: passwords must be at least [6] characters long;"
            return es_error(400, "action_request_validation_exception", reason)
        missing = [r for r in body.get("roles", []) if r not in self.roles]
        if missing:  # Elasticsearch accepts it; a user with an unknown role can do nothing
            return es_error(400, "standin_exception", f"unknown roles {missing}")
        created = name not in self.users
        self.users[name] = body
        if password is not None:
            self.passwords[name] = password
        return JSONResponse({"created": created})

    async def change_password(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.passwords:
            return es_error(404, "resource_not_found_exception", f"user [{name}] not found")
        self.passwords[name] = (await request.json())["password"]
        return JSONResponse({})

    # -------------------------------------------------------------------- Kibana
    async def kibana_status(self, request: Request) -> Response:
        if self.kibana_unavailable > 0:
            self.kibana_unavailable -= 1
            level, code = "unavailable", 503
        else:
            level, code = "available", 200
        overall = {"level": level, "summary": f"All services and plugins are {level}"}
        body = {"name": "standin", "status": {"overall": overall, "core": {}, "plugins": {}}}
        return JSONResponse(body, code)

    async def kibana_import(self, request: Request) -> Response:
        if "kbn-xsrf" not in request.headers:
            message = "Request must contain a kbn-xsrf header."
            return JSONResponse(
                {"statusCode": 400, "error": "Bad Request", "message": message}, 400
            )
        head = f"Content-Type: {request.headers.get('content-type')}\r\n\r\n".encode()
        form = BytesParser(policy=policy.HTTP).parsebytes(head + await request.body())
        files = [
            p
            for p in form.iter_parts()
            if p.get_param("name", header="content-disposition") == "file"
        ]
        if not files or not str(files[0].get_filename()).endswith(".ndjson"):
            message = "[request body.file]: expected an .ndjson file"
            return JSONResponse(
                {"statusCode": 400, "error": "Bad Request", "message": message}, 400
            )
        raw = files[0].get_payload(decode=True)
        objects = [json.loads(line) for line in raw.splitlines() if line.strip()]
        objects = [o for o in objects if "type" in o]
        overwrite = request.query_params.get("overwrite") == "true"
        present = set(self.saved_objects) | {(o["type"], o["id"]) for o in objects}
        errors, imported = [], []
        for item in objects:
            key = (item["type"], item["id"])
            title = item.get("attributes", {}).get("title")
            missing = [
                {"type": r["type"], "id": r["id"]}
                for r in item.get("references", [])
                if (r["type"], r["id"]) not in present
            ]
            if missing:
                error = {"type": "missing_references", "references": missing}
            elif key in self.saved_objects and not overwrite:
                error = {"type": "conflict"}
            else:
                imported.append(item)
                continue
            errors.append(
                {"id": item["id"], "type": item["type"], "meta": {"title": title}, "error": error}
            )
        for item in imported:
            self.saved_objects[(item["type"], item["id"])] = item
        body: dict[str, Any] = {"success": not errors, "successCount": len(imported)}
        if errors:
            body["errors"] = errors
        return JSONResponse(body)


@contextmanager
def serving(app: Any, cert: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve ``app`` (a StandIn) on a free port of 127.0.0.1; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    tls = {"ssl_certfile": str(cert[0]), "ssl_keyfile": str(cert[1])} if cert else {}
    config = uvicorn.Config(
        app, lifespan="off", ws="none", log_level="critical", access_log=False, **tls
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the stand-in stopped while starting"
        assert time.monotonic() < deadline, "the stand-in did not start in 10 s"
        time.sleep(0.01)
    try:
        yield f"{'https' if cert else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
