"""kopf's admission example (examples/17-admission) for tests/apiserver/test_admission_webhooks.py.

Run with ``python -m kopf run --standalone``.  kopf serves the webhooks over
HTTPS on 127.0.0.1 (the port, certificate, key and CA come from the test's
environment) and manages the Validating/MutatingWebhookConfigurations named
``auto.kopf.dev`` itself: one webhook per handler, named ``<handler>.auto.kopf.dev``.
``validate1`` refuses a KopfExample whose ``spec.field`` is ``wrong``;
``mutate1`` injects ``spec.injected: 123`` into every one.
"""

from __future__ import annotations

import os
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.admission.server = kopf.WebhookServer(
        addr="127.0.0.1",
        host="127.0.0.1",
        port=int(os.environ["KOPF_WEBHOOK_PORT"]),
        certfile=os.environ["KOPF_WEBHOOK_CERT"],
        pkeyfile=os.environ["KOPF_WEBHOOK_KEY"],
        cafile=os.environ["KOPF_WEBHOOK_CA"],
    )
    settings.admission.managed = "auto.kopf.dev"


@kopf.on.validate("kopf.dev", "v1", "kopfexamples")
def validate1(spec: kopf.Spec, dryrun: bool, **_: Any) -> None:
    if not dryrun and spec.get("field") == "wrong":
        raise kopf.AdmissionError("Meh! I don't like it. Change the field.")


@kopf.on.mutate("kopf.dev", "v1", "kopfexamples")
def mutate1(patch: kopf.Patch, **_: Any) -> None:
    patch.spec["injected"] = 123
