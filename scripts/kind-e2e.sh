#!/usr/bin/env bash
# `make kind-e2e`, after `make kind-up deploy`: the chart's own `helm test`, then
# the example ShortLinks applied and one of them followed through the Ingress
# (ingress-nginx on the host's port 8088, see scripts/kind.yaml). Needs kubectl,
# helm and curl; documented in docs/image.md, not run in CI (no cluster there).
set -euo pipefail

context=kind-${KIND_NAME:-shorty}
namespace=${NAMESPACE:-shorty}
release=${RELEASE:-shorty}
kubectl=(kubectl --context "$context")

echo "== helm test $release"
helm --kube-context "$context" --namespace "$namespace" test "$release" --timeout 5m

echo "== the example ShortLinks"
"${kubectl[@]}" apply -f manifests/examples/
"${kubectl[@]}" --namespace default wait shortlink --all --for=condition=Ready --timeout=180s
"${kubectl[@]}" --namespace default get shortlinks

code=$("${kubectl[@]}" --namespace default get shortlink docs -o jsonpath='{.status.code}')
target=$("${kubectl[@]}" --namespace default get shortlink docs -o jsonpath='{.spec.target}')
# The public host is whatever the chart's Ingress says, not a guess here.
host=$("${kubectl[@]}" --namespace "$namespace" get ingress \
    -l "app.kubernetes.io/instance=$release" -o jsonpath='{.items[0].spec.rules[0].host}')

echo "== GET http://$host/$code through the Ingress"
location=$(curl --silent --show-error --output /dev/null --write-out '%{redirect_url}' \
    --header "Host: $host" "http://127.0.0.1:8088/$code")
if [ "$location" != "$target" ]; then
    echo "kind-e2e: /$code redirected to '${location}', expected '$target'" >&2
    exit 1
fi
echo "kind-e2e: /$code -> $location"
