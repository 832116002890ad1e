"""A replaced pod drains before it stops (values.yaml, drainSeconds): the rolling-update test on
the local cluster (tests/k8s) found sagas failing while callers still held a gone pod's address.
The app sleeps in preStop, daprd blocks its shutdown as long, and the grace period covers both."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.chart import CHART, NAMESPACE, RELEASE, RENDERS, run_helm
from tests.deploy.test_deployments import annotations, app_container, deployments


@pytest.mark.parametrize("name", RENDERS)
def test_a_replaced_pod_keeps_serving_while_callers_forget_it(render, name):
    for deployment in deployments(render(name)).values():
        spec = deployment["spec"]["template"]["spec"]
        sleep = app_container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep" and int(sleep[1]) >= 50  # daprd's 20 s address cache + CoreDNS's 30 s
        assert annotations(deployment)["dapr.io/block-shutdown-duration"] == f"{sleep[1]}s"
        assert spec["terminationGracePeriodSeconds"] >= int(sleep[1]) + 20  # then both shut down in it


def test_drain_off_stops_pods_at_once(helm):
    result = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--set", "drainSeconds=0")
    assert result.returncode == 0, result.stderr
    for deployment in deployments([d for d in yaml.safe_load_all(result.stdout) if d]).values():
        assert "lifecycle" not in app_container(deployment)
        assert "dapr.io/block-shutdown-duration" not in annotations(deployment)
        assert "terminationGracePeriodSeconds" not in deployment["spec"]["template"]["spec"]
