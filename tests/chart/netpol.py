"""Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), evaluated on labels.

A connection from one endpoint to another on a port is allowed when the source's
egress allows it and the destination's ingress allows it. A side is open unless a
policy of its namespace selects the pod with that direction in its policyTypes;
then one rule of one such policy must match the peer and the port. Endpoints
outside the namespace the policies live in are not governed by them (their
side is open): the chart's policies only speak for the release's namespace.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from tests.chart.wiring import selects


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels, its namespace and that namespace's labels, its named ports)
    or an address outside the cluster's pods (ip only)."""

    name: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    ip: str = ""
    named_ports: dict[str, tuple[int, str]] = field(default_factory=dict)  # name → (port, proto)

    @property
    def is_pod(self) -> bool:
        return bool(self.namespace)


def policy_types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    # The API server's default: Ingress always, Egress when egress rules are given.
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if not other.ip:
            return False
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), other.labels)


def port_matches(rule_ports: list[dict[str, Any]], port: int, protocol: str, dst: Endpoint) -> bool:
    if not rule_ports:
        return True  # no ports: every port
    for item in rule_ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        wanted = item.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):  # a named port of the destination pod
            if dst.named_ports.get(wanted) == (port, protocol):
                return True
        elif wanted <= port <= item.get("endPort", wanted):
            return True
    return False


def side_allows(
    policies: list[dict[str, Any]],
    namespace: str,
    pod: Endpoint,
    peer: Endpoint,
    direction: str,
    port: int,
    protocol: str,
    dst: Endpoint,
) -> bool:
    """Whether the policies (all of `namespace`) let `pod`'s traffic with `peer` through
    in `direction`."""
    if pod.namespace != namespace:
        return True
    governing = [
        policy
        for policy in policies
        if direction in policy_types(policy) and selects(policy["spec"]["podSelector"], pod.labels)
    ]
    if not governing:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in governing:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers and not any(peer_matches(p, peer, pod.namespace) for p in peers):
                continue
            if port_matches(rule.get("ports") or [], port, protocol, dst):
                return True
    return False


def allowed(
    policies: list[dict[str, Any]],
    namespace: str,
    src: Endpoint,
    dst: Endpoint,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether `src` may open a connection to `dst` on `port` under `namespace`'s policies."""
    return side_allows(policies, namespace, src, dst, "Egress", port, protocol, dst) and (
        side_allows(policies, namespace, dst, src, "Ingress", port, protocol, dst)
    )
