"""The chart's traces: OpenTelemetry's variables on the api, redirect, worker and
operator pods, only once otel.endpoint is set; the egress to the collector is in
test_wiring's flows (docs/deploy.md "Network flows")."""

from __future__ import annotations

import pytest

from tests.chart.render import CHART, env_of, helm, of_kind, pod_specs, render

TRACED = {"api", "redirect", "worker", "operator"}
PRODUCTION = "production-like-values.yaml"


def otel_env(objects) -> dict[str, dict[str, str]]:
    """component → its OTEL_* variables (name → value)."""
    found = {}
    for name, spec in pod_specs(objects):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            variables = {
                key: item.get("value", "")
                for key, item in env_of(container).items()
                if key.startswith("OTEL_")
            }
            if variables:
                found[name] = variables
    return found


def test_without_an_endpoint_no_pod_gets_a_variable_nor_a_way_out():
    objects = render(None)
    assert otel_env(objects) == {}
    policies = [p["metadata"]["name"] for p in of_kind(objects, "NetworkPolicy")]
    assert "demo-shorty-otel-collector" not in policies


def test_an_endpoint_goes_to_the_four_components_with_the_redirects_own_ratio():
    found = otel_env(render(PRODUCTION))
    assert set(found) == TRACED
    for component, variables in found.items():
        assert (
            variables["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
        )
        assert variables["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=production"
        assert ("OTEL_TRACES_SAMPLER_ARG" in variables) == (component == "redirect")
    assert found["redirect"]["OTEL_TRACES_SAMPLER_ARG"] == "0.02"


def test_a_ratio_in_otel_env_is_for_every_component_but_the_redirect():
    sets = ("otel.endpoint=http://c:4318", "otel.env.OTEL_TRACES_SAMPLER_ARG=0.5")
    found = otel_env(render(None, sets=sets))
    assert {c: v["OTEL_TRACES_SAMPLER_ARG"] for c, v in found.items()} == {
        "api": "0.5",
        "worker": "0.5",
        "operator": "0.5",
        "redirect": "0.01",
    }


def test_the_redirects_ratio_holds_when_the_endpoint_is_in_a_secret():
    """The collector's endpoint given by otel.existingSecret (with its token), and a
    sampler named in otel.env: the redirect pods still get their ratio, not the
    sampler's default of 1 (every redirect traced)."""
    sets = ("otel.existingSecret=collector", "otel.env.OTEL_TRACES_SAMPLER=traceidratio")
    found = otel_env(render(None, sets=sets))
    assert found["redirect"] == {
        "OTEL_TRACES_SAMPLER": "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    }
    assert "OTEL_TRACES_SAMPLER_ARG" not in found["api"]
    found = otel_env(render(None, sets=("otel.existingSecret=collector",)))
    assert found == {"redirect": {"OTEL_TRACES_SAMPLER_ARG": "0.01"}}


def secrets_given(objects) -> dict[str, list[str]]:
    """component → the Secrets its containers take whole (envFrom)."""
    found = {}
    for name, spec in pod_specs(objects):
        for container in spec.get("containers", []):
            names = [
                s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s
            ]
            if names:
                found[name] = names
    return found


def test_a_secret_of_your_own_gives_the_four_components_its_otel_variables():
    """A collector's token (OTEL_EXPORTER_OTLP_HEADERS) is no value of the chart's."""
    assert secrets_given(render(PRODUCTION)) == {}
    found = secrets_given(render(None, sets=("otel.existingSecret=collector-token",)))
    assert found == {component: ["collector-token"] for component in TRACED}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("otel.endpoint=collector:4318", "otel/endpoint"),  # a URL, with its scheme
        ("otel.redirectSampleRatio=2", "maximum: got 2, want 1"),
        # OTEL_* only, and the endpoint is otel.endpoint.
        ("otel.env.SHORTY_LOG_LEVEL=DEBUG", "invalid propertyName 'SHORTY_LOG_LEVEL'"),
        (
            "otel.env.OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318",
            "invalid propertyName 'OTEL_EXPORTER_OTLP_ENDPOINT'",
        ),
        ("otel.endpont=http://c:4318", "additional properties 'endpont' not allowed"),
        ("networkPolicy.otelCollector.port=0", "minimum: got 0, want 1"),
        ("otel.existingSecret=Collector_Token", "otel/existingSecret"),  # no object name
    ],
)
def test_the_values_schema_rejects_bad_otel_values(setting, message):
    result = helm("template", "demo", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr
