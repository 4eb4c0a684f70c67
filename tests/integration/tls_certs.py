"""A throwaway CA and certs for TLS tests.

One cert serves as etcd's server cert and as the client cert (etcd's own
gateway does the same), so it carries both serverAuth and clientAuth, and IP
SANs for the loopback addresses clients dial.
"""

from __future__ import annotations

from pathlib import Path

from skiff.api.certificates import ensure_serving_pki
from skiff.store.etcd_process import TlsFiles


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and one serverAuth+clientAuth certificate for 127.0.0.1, ::1 and localhost, in ``directory``."""
    pki = ensure_serving_pki(directory, "skiff test CA", "etcd member", client_too=True)
    return TlsFiles(ca_file=pki.ca_cert, cert_file=pki.server_cert, key_file=pki.server_key)
