"""A small real kopf operator for tests/apiserver/test_kopf.py (run with ``python -m kopf run``).

Handlers of ``kopfexamples.kopf.dev`` (the CRD of kopf's own examples):
create and update return a message, which kopf stores under
``status.<handler id>``; create also posts an Event (``kopf.info``); the delete handler (which makes kopf add its
finalizer to every object) appends the object's name to the file named by
``KOPF_TEST_DELETED`` before kopf removes the finalizer — the test's proof
that it ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Short watch timeouts exercise re-watching from a resourceVersion.
    settings.watching.server_timeout = 10
    settings.watching.client_timeout = 15


@kopf.on.create("kopf.dev", "v1", "kopfexamples")
def create_fn(spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict[str, str]:
    # Posted in the background as a core/v1 Event (generateName, involvedObject, eventTime).
    kopf.info(body, reason="Greeting", message=f"hello from create_fn: {spec.get('field')}")
    return {"message": f"created-{spec.get('field')}"}


@kopf.on.update("kopf.dev", "v1", "kopfexamples")
def update_fn(spec: kopf.Spec, **_: Any) -> dict[str, str]:
    return {"message": f"updated-{spec.get('field')}"}


@kopf.on.delete("kopf.dev", "v1", "kopfexamples")
def delete_fn(name: str, **_: Any) -> None:
    with Path(os.environ["KOPF_TEST_DELETED"]).open("a") as marker:
        marker.write(f"{name}\n")
