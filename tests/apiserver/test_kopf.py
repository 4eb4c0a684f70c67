"""A real kopf operator process against a real ``skiff apiserver``.

The operator (``kopf_operator.py`` beside this file) runs as
``python -m kopf run --standalone --namespace <ns>`` with the harness's admin
kubeconfig.  Through real kubectl the test creates a ``KopfExample``, waits
until kopf wrote the create handler's result to ``status``, updates the spec
and waits for the update handler's result, then deletes the object: ``kubectl
delete`` blocks until kopf's delete handler ran and kopf removed its
finalizer, after which the object is gone.  Finally the operator gets SIGTERM
by PID and must exit cleanly.  Waiting is ``kubectl wait`` (event-driven)
under a deadline, never a sleep.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401

NS = "kopf-e2e"
OPERATOR = Path(__file__).with_name("kopf_operator.py")
STOP_DEADLINE_S = 30.0
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

#: As kopf's examples/crd.yaml (group kopf.dev), with the status subresource.
CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kopfexamples.kopf.dev
spec:
  scope: Namespaced
  group: kopf.dev
  names:
    kind: KopfExample
    plural: kopfexamples
    singular: kopfexample
    shortNames: [kopfexes, kopfex, kexes, kex]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns:
    - name: Field
      type: string
      jsonPath: .spec.field
    - name: Message
      type: string
      jsonPath: .status.create_fn.message
"""

EXAMPLE = f"""\
apiVersion: kopf.dev/v1
kind: KopfExample
metadata:
  name: kopf-example-1
  namespace: {NS}
spec:
  field: value
"""


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    log: Path
    deleted: Path

    def logs(self) -> str:
        return f"--- kopf log ---\n{self.log.read_text()}"


@pytest.fixture(scope="module")
def operator(apiserver: RunningApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    base = tmp_path_factory.mktemp("kopf")
    setup = Kubectl(apiserver, base / "cache")
    setup.ok("apply", "-f", "-", stdin=CRD)
    setup.ok("wait", "--for", "condition=established", "--timeout=30s", "crd/kopfexamples.kopf.dev")
    setup.ok("create", "namespace", NS)
    log, deleted = base / "kopf.log", base / "deleted.txt"
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", NS, "--verbose", str(OPERATOR)]
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig), "KOPF_TEST_DELETED": str(deleted)}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base)
    running = Operator(proc, log, deleted)
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            print(running.logs(), file=sys.stderr)


def _wait(kubectl: Kubectl, operator: Operator, jsonpath: str, value: str) -> None:
    code, _, err = kubectl.run(
        "wait", "-n", NS, f"--for=jsonpath={jsonpath}={value}", "--timeout=60s", "kopfexample/kopf-example-1",
        timeout=90,
    )  # fmt: skip
    assert code == 0, f"{err}\n{operator.logs()}"


def _event(kubectl: Kubectl, reason: str) -> dict[str, Any]:
    """The first Event with ``reason`` (kopf posts events in the background: poll to a deadline)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = kubectl.ok("get", "-n", NS, "events", "--field-selector", f"reason={reason}", "-o", "json")
        items: list[dict[str, Any]] = json.loads(out)["items"]
        if items:
            return items[0]
        time.sleep(0.2)
    raise AssertionError(f"no {reason} event was posted")


def test_operator_handles_create_update_delete_and_stops_on_sigterm(
    operator: Operator, kubectl: Kubectl, apiserver: RunningApiServer
) -> None:
    kubectl.ok("create", "-f", "-", stdin=EXAMPLE)
    _wait(kubectl, operator, "{.status.create_fn.message}", "created-value")
    obj = json.loads(kubectl.ok("get", "-n", NS, "kopfexample", "kopf-example-1", "-o", "json"))
    assert KOPF_FINALIZER in obj["metadata"]["finalizers"]
    assert "kopf.zalando.org/last-handled-configuration" in obj["metadata"]["annotations"]

    kubectl.ok("patch", "-n", NS, "kopfexample", "kopf-example-1", "--type=merge", "-p", '{"spec":{"field":"new"}}')
    _wait(kubectl, operator, "{.status.update_fn.message}", "updated-new")

    # kubectl delete waits (--wait defaults to true) until the finalizer is gone and the object with it.
    code, out, err = kubectl.run("delete", "-n", NS, "kopfexample", "kopf-example-1", "--timeout=60s", timeout=90)
    assert code == 0, f"{err}\n{operator.logs()}"
    assert 'kopfexample.kopf.dev "kopf-example-1" deleted' in out
    assert operator.deleted.read_text() == "kopf-example-1\n"
    code, _, err = kubectl.run("get", "-n", NS, "kopfexample", "kopf-example-1")
    assert code == 1 and "NotFound" in err

    event = _event(kubectl, "Greeting")
    assert event["message"] == "hello from create_fn: value"
    assert event["involvedObject"]["kind"] == "KopfExample" and event["involvedObject"]["name"] == "kopf-example-1"
    assert event["metadata"]["name"].startswith("kopf-event-")

    operator.proc.send_signal(signal.SIGTERM)
    try:
        code = operator.proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kopf did not exit after SIGTERM\n{operator.logs()}")
    assert code == 0, operator.logs()
    log = operator.log.read_text()
    assert "Traceback" not in log, log
    assert "APIServerError" not in log and "APIClientError" not in log, log
