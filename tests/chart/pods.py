"""A rendered container as the kubelet would start it, but as a local process.

``container_env`` gives the environment Kubernetes would: the ConfigMaps of
``envFrom``, then ``env`` in order, ``valueFrom`` resolved from the rendered
ConfigMap/Secret (or the pod's name) and dependent variables ``$(VAR)`` expanded
as Kubernetes expands them. ``argv`` is command + args, expanded the same way
(``command`` replaces the image's ENTRYPOINT). ``probe_port`` maps a probe's
port (a name or a number) to the containerPort it means.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

Objects = tuple[dict[str, Any], ...]


def expand(text: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)``: a variable defined before is replaced, an
    undefined one is left as written, ``$$`` is one ``$`` (so ``$$(VAR)`` stays
    ``$(VAR)``), and any other ``$`` is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        after = text[i + 1]
        if after == "$":
            out.append("$")
            i += 2
        elif after == "(":
            close = text.find(")", i + 2)
            if close == -1:  # no closing parenthesis: kept as it is
                out.append(text[i:])
                break
            name = text[i + 2 : close]
            out.append(defined[name] if name in defined else text[i : close + 1])
            i = close + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return {**data, **secret.get("stringData", {})}


def _find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert found, f"the container refers to {kind} {name}, which the chart does not render"
    return found[0]


def _value_from(source: dict[str, Any], objects: Objects, pod: str) -> str:
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        data = _find(objects, "ConfigMap", ref["name"])["data"]
    elif "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        data = secret_data(_find(objects, "Secret", ref["name"]))
    elif "fieldRef" in source:
        assert source["fieldRef"]["fieldPath"] == "metadata.name", source
        return pod
    else:
        raise AssertionError(f"valueFrom not handled here: {source}")
    assert ref["key"] in data, f"{ref['name']} has no key {ref['key']}"
    return str(data[ref["key"]])


def container_env(container: dict[str, Any], objects: Objects, pod: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(secret_data(_find(objects, "Secret", source["secretRef"]["name"])))
    for item in container.get("env", []):
        if "valueFrom" in item:
            env[item["name"]] = _value_from(item["valueFrom"], objects, pod)
        else:
            env[item["name"]] = expand(str(item.get("value", "")), env)
    return env


def argv(container: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    assert "command" in container, "the image's ENTRYPOINT is `shorty`: set command"
    return [expand(str(part), env) for part in [*container["command"], *container.get("args", [])]]


def probe_port(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    return int(number)


def service_port(objects: Objects, name: str) -> int:
    """The port of the Service ``name`` (its only one)."""
    (port,) = _find(objects, "Service", name)["spec"]["ports"]
    return int(port["port"])
