"""The running API server: store, registries, watch caches, TLS listener, compaction.

``ApiServer.start()``:

1. makes (or reuses) the cluster PKI in the data dir;
2. opens the store from its URL, unless one is handed in (``skiff up`` shares
   its store with the etcd facade);
3. builds one ``WatchCache`` and one ``GenericRegistry`` per row of the
   resource table (over an ``EncryptedStore`` for the resources
   ``--encryption-provider-config`` encrypts)
   and waits for every cache's first list, then starts the
   CRD establisher (``crds.establisher``), which serves every stored
   CustomResourceDefinition before the server listens;
4. listens with TLS (client certificates optional, verified against the CA;
   ALPN offers HTTP/1.1 only) and, if asked, on a loopback-only plain port;
   new handshakes pick up a rewritten serving certificate, and client
   certificates listed in ``pki/revoked-serials`` stop authenticating, without
   a restart (``apiserver.dynamic_certs``);
5. runs periodic compaction like kube-apiserver's --etcd-compaction-interval;
6. audits requests if ``--audit-policy-file`` is given (``apiserver.audit``;
   ``stop()`` flushes the log last);
7. bootstraps the system namespaces, PriorityClasses and the ``kubernetes``
   Service (``apiserver.bootstrap``) and, with RBAC, the bootstrap roles and
   bindings (``apiserver.rbac_bootstrap``) — /readyz waits for both — and
   repairs service allocations now and then;
8. authorizes with ``--authorization-mode`` (default ``Node,RBAC``): the Node
   authorizer and RBAC read this server's watch caches, and RBAC's escalation
   check joins the admission chain;
9. dials kubelets (pods/log, exec, attach, portforward) as kubeadm's
   ``kube-apiserver-kubelet-client`` (its certificate made beside the others),
   verifying their serving certs with ``--kubelet-certificate-authority``.

``stop()`` stops listening, closes the watch caches (open watches end
cleanly), lets in-flight requests finish, stops compaction and closes the
store if it opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from skiff.api.certificates import all_current
from skiff.apiserver import audit as audit_mod
from skiff.apiserver import bootstrap as bootstrap_mod
from skiff.apiserver import pki as pki_mod
from skiff.apiserver import scale as scale_mod
from skiff.apiserver.app import ApiApp
from skiff.apiserver.auth import (
    AllowAuthenticated,
    Attributes,
    Authenticator,
    Authorizer,
    UnionAuthorizer,
    UserInfo,
    load_token_file,
)
from skiff.apiserver.bootstrap_tokens import BootstrapTokenAuthenticator
from skiff.apiserver.crds.establisher import CRD_GROUP, CRD_PLURAL, CRD_VERSION, CrdEstablisher
from skiff.apiserver.dynamic_certs import (
    REVOKED_RELOAD_S,
    SERVING_RELOAD_S,
    RevokedSerials,
    ServingCertificate,
    refresh_periodically,
)
from skiff.apiserver.field_validation import SchemaFieldChecker
from skiff.apiserver.node_authorizer import NodeAuthorizer
from skiff.apiserver.pod_proxy import KubeletDialer
from skiff.apiserver.rbac import RBAC_GROUP, RBAC_PLURALS, RbacAuthorizer, RbacObjects
from skiff.apiserver.rbac_bootstrap import reconcile_policy
from skiff.apiserver.rbac_escalation import RbacEscalation
from skiff.apiserver.served import ServedResources
from skiff.apiserver.serviceaccount_tokens import (
    DEFAULT_ISSUER,
    ServiceAccountTokens,
    load_signing_key,
    load_verification_keys,
)
from skiff.apiserver.user_certs import revoked_serials_path
from skiff.registry.admission import AdmissionChain, default_chain
from skiff.registry.allocators import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR
from skiff.registry.core.service_allocation import ServiceAllocations
from skiff.registry.encrypted_store import storage_for
from skiff.registry.encryption import EncryptionConfig, load_config
from skiff.registry.request_user import RequestUser
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import builtin_schemas
from skiff.registry.watch_cache import WatchCache
from skiff.store.compactor import DEFAULT_INTERVAL_S, compact_periodically
from skiff.store.errors import StoreError
from skiff.store.protocol import Store

log = logging.getLogger(__name__)

#: How long stop() lets in-flight requests finish.
SHUTDOWN_GRACE_S = 5.0
#: kube-apiserver's conventional secure port.
DEFAULT_SECURE_PORT = 6443
#: kube-apiserver's http.Server IdleTimeout.  aiohttp has no separate header-read timeout (upstream's
#: ReadHeaderTimeout is 32 s): its keep-alive timer runs from the connection's start (or the last response)
#: until a request's headers are complete, so it also cuts off a client that trickles its headers (slow loris).
IDLE_CONNECTION_TIMEOUT_S = 90.0
#: What --authorization-mode accepts, and what kubeadm (and so Skiff) turns on.
AUTHORIZATION_MODES = ("AlwaysAllow", "Node", "RBAC")
DEFAULT_AUTHORIZATION_MODES = ("Node", "RBAC")


@dataclass(frozen=True)
class ApiServerConfig:
    store_url: str
    data_dir: Path
    bind_address: str = "127.0.0.1"
    secure_port: int = DEFAULT_SECURE_PORT
    insecure_port: int | None = None
    token_auth_file: Path | None = None
    compaction_interval_s: float = DEFAULT_INTERVAL_S
    #: Extra names/IPs for the serving certificate.
    extra_sans: tuple[str, ...] = ()
    #: --service-cluster-ip-range: where Services' cluster IPs come from (inside 127.0.0.0/8).
    service_cluster_ip_range: str = DEFAULT_SERVICE_CIDR
    #: --service-node-port-range.
    service_node_port_range: str = DEFAULT_NODE_PORT_RANGE
    #: --service-account-issuer: the ``iss`` of ServiceAccount tokens (also their default audience).
    service_account_issuer: str = DEFAULT_ISSUER
    #: --encryption-provider-config: an EncryptionConfiguration file (``registry.encryption``); None stores plaintext.
    encryption_provider_config: Path | None = None
    #: --audit-policy-file: an audit.k8s.io/v1 Policy (``apiserver.audit``); None audits nothing.
    audit_policy_file: Path | None = None
    #: --audit-log-path: where events go ("-" is stdout); None (with a policy) is DATA_DIR/logs/audit.log.
    audit_log_path: str | None = None
    #: --audit-log-maxsize (MiB) and --audit-log-maxbackup: rotation.
    audit_log_maxsize: float = 100
    audit_log_maxbackup: int = 5
    #: --authorization-mode: asked in order (``AUTHORIZATION_MODES``); secure by default.
    authorization_modes: tuple[str, ...] = DEFAULT_AUTHORIZATION_MODES
    #: How long a connection may wait between requests, and for a request's headers (see ``start``).
    idle_connection_timeout_s: float = IDLE_CONNECTION_TIMEOUT_S
    #: --etcd-cafile, --etcd-certfile, --etcd-keyfile: TLS to an ``https://`` store (``skiff.store.open``).
    etcd_cafile: Path | None = None
    etcd_certfile: Path | None = None
    etcd_keyfile: Path | None = None
    #: --kubelet-certificate-authority: verify kubelets' serving certs against it; None does not verify.
    kubelet_certificate_authority: Path | None = None
    #: --service-account-signing-key-file: signs ServiceAccount tokens; None is DATA_DIR/pki/sa.key.
    service_account_signing_key_file: Path | None = None
    #: --service-account-key-file (repeatable): more keys tokens may be signed with (a rotated-out key's).
    service_account_key_files: tuple[Path, ...] = ()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (the ssl module has no name for it).
X509_V_FLAG_NO_CHECK_TIME = 0x200000


def tls_context(paths: pki_mod.Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(paths.ca_cert))
    ctx.load_cert_chain(str(paths.serving_cert), str(paths.serving_key))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client cert is one way to authenticate, not required
    if all_current(paths.ca_cert):
        # A client certificate's dates are checked per request (auth.certificate_current: 401 like upstream);
        # only while the CAs themselves are current, else the handshake keeps refusing everything they signed.
        ctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024, reuse_port=False)


@dataclass
class ApiServer:
    config: ApiServerConfig
    store: Store | None = None
    served: ServedResources = field(default_factory=ServedResources)
    pki: pki_mod.Pki | None = None
    secure_address: tuple[str, int] | None = None
    insecure_address: tuple[str, int] | None = None
    #: The resource table to serve; None means the built-in table (skiff.registry.builtin.BUILTIN).
    table: Sequence[ResourceInfo] | None = None
    #: Asked instead of the --authorization-mode chain when set (tests bring their own).
    authorizer: Authorizer | None = None
    _own_store: bool = False
    _caches: list[WatchCache] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _sites: list[web.BaseSite] = field(default_factory=list)
    _compactor: asyncio.Task[None] | None = None
    #: The admission chain every registry runs, custom resources' included.
    admission: AdmissionChain = field(default_factory=AdmissionChain)
    _services: ServiceAllocations | None = None
    _repairer: asyncio.Task[None] | None = None
    _bootstrapped: bool = False
    _crds: CrdEstablisher | None = None
    _encryption: EncryptionConfig | None = None
    _auditor: audit_mod.Auditor | None = None
    _authz: Authorizer | None = None
    _serving: ServingCertificate | None = None
    _revoked: RevokedSerials | None = None
    _reloaders: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.secure_address is not None
        host, port = self.secure_address
        return f"https://{f'[{host}]' if ':' in host else host}:{port}"

    async def start(self) -> None:
        config = self.config
        if config.insecure_port is not None and not is_loopback(config.bind_address):
            # The insecure port always binds loopback; say so rather than surprise.
            log.info("--insecure-port listens on 127.0.0.1 only")
        hosts = (config.bind_address, *config.extra_sans) if config.bind_address not in ("0.0.0.0", "::") else ()
        self.pki = await asyncio.to_thread(pki_mod.ensure_pki, config.data_dir, hosts)
        kubelet_client = await asyncio.to_thread(
            pki_mod.ensure_client_cert,
            self.pki,
            self.pki.directory / pki_mod.KUBELET_CLIENT_NAME,
            pki_mod.KUBELET_CLIENT_USER,
        )
        tokens = await asyncio.to_thread(load_token_file, config.token_auth_file) if config.token_auth_file else {}
        if config.encryption_provider_config is not None:
            self._encryption = await asyncio.to_thread(load_config, config.encryption_provider_config)
        if config.audit_policy_file is not None:
            self._auditor = await asyncio.to_thread(
                audit_mod.open_auditor,
                config.audit_policy_file,
                config.audit_log_path or str(audit_mod.default_log_path(config.data_dir)),
                config.audit_log_maxsize,
                config.audit_log_maxbackup,
            )
        if self.store is None:
            from skiff.store.open import open_store

            self.store = await open_store(
                config.store_url,
                ca_file=config.etcd_cafile,
                cert_file=config.etcd_certfile,
                key_file=config.etcd_keyfile,
            )
            self._own_store = True
        await self._build_resources(self.store)
        if self.served.find(CRD_GROUP, CRD_VERSION, CRD_PLURAL) is not None:
            self._crds = CrdEstablisher(self.store, self.served, admission=self.admission, encryption=self._encryption)
            await self._crds.start()
        # Deriving the schemas imports a few hundred client models (about a second): off the event loop.
        schemas = await asyncio.to_thread(builtin_schemas)
        reader = bootstrap_mod.ServedReader(self.served)
        sa_key = await asyncio.to_thread(load_signing_key, config.service_account_signing_key_file or self.pki.sa_key)
        sa_verify = await asyncio.to_thread(load_verification_keys, config.service_account_key_files)
        sa_tokens = ServiceAccountTokens(reader, sa_key, config.service_account_issuer, verification_keys=sa_verify)
        pki = self.pki
        self._serving = ServingCertificate(lambda: tls_context(pki), (pki.serving_cert, pki.serving_key, pki.ca_cert))
        serving_context = await asyncio.to_thread(self._serving.load)
        self._revoked = RevokedSerials(revoked_serials_path(pki))
        await asyncio.to_thread(self._revoked.load)
        self._authz = self.authorizer if self.authorizer is not None else self._authorizer()
        app = ApiApp(
            self.served,
            authenticator=Authenticator(
                tokens,
                (BootstrapTokenAuthenticator(reader), sa_tokens),
                api_audiences=sa_tokens.audiences,
                revoked=self._revoked,
            ),
            authorizer=self._authz,
            sa_tokens=sa_tokens,
            auditor=self._auditor,
            field_checker=SchemaFieldChecker(schemas),
            kubelet_dialer=KubeletDialer(*kubelet_client, config.kubelet_certificate_authority),
            livez_checks={"ping": _ok, "etcd": self._store_check},
            readyz_checks={
                "ping": _ok,
                "etcd": self._store_check,
                "watch-caches": self._caches_check,
                "poststarthook/bootstrap-controller": self._bootstrap_check,
            },
        )
        self._runner = web.AppRunner(
            app.build(),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE_S,
            keepalive_timeout=config.idle_connection_timeout_s,  # aiohttp's default is an hour
        )
        await self._runner.setup()
        secure_sock = _listen(config.bind_address, config.secure_port)
        self.secure_address = secure_sock.getsockname()[:2]
        app.server_address = f"{self.secure_address[0]}:{self.secure_address[1]}"
        await self._add_site(web.SockSite(self._runner, secure_sock, ssl_context=serving_context))
        self._reloaders = [
            asyncio.create_task(refresh_periodically(self._serving.refresh, SERVING_RELOAD_S)),
            asyncio.create_task(refresh_periodically(self._revoked.refresh, REVOKED_RELOAD_S)),
        ]
        if config.insecure_port is not None:
            plain_sock = _listen("127.0.0.1", config.insecure_port)
            self.insecure_address = plain_sock.getsockname()[:2]
            await self._add_site(web.SockSite(self._runner, plain_sock))
        if config.compaction_interval_s > 0:
            self._compactor = asyncio.create_task(compact_periodically(self.store, config.compaction_interval_s))
        await self._bootstrap()

    def _authorize_signer(self, user: RequestUser, verb: str, signer: str) -> bool:
        """May ``user`` approve/sign for ``signer`` (the CSR admission plugins' question, asked of the authorizer)?"""
        if self._authz is None:
            return False
        attributes = Attributes(
            verb=verb, resource_request=True, api_group="certificates.k8s.io", api_version="*", resource="signers",
            name=signer,
        )  # fmt: skip
        user_info = user if isinstance(user, UserInfo) else UserInfo(user.name, user.uid, user.groups, user.extra)
        return self._authz.authorize(user_info, attributes)[0]

    def _cache(self, group: str, plural: str) -> WatchCache:
        return next(c for c in self._caches if c.info.group == group and c.info.plural == plural)

    def _authorizer(self) -> Authorizer:
        """The --authorization-mode chain over this server's watch caches."""
        chain: list[Authorizer] = []
        rbac: RbacAuthorizer | None = None
        for mode in self.config.authorization_modes:
            if mode == "AlwaysAllow":
                chain.append(AllowAuthenticated())
            elif mode == "Node":
                chain.append(NodeAuthorizer(self._cache("", "pods"), self._cache("", "persistentvolumes")))
            elif mode == "RBAC":
                rbac = self._rbac()
                chain.append(rbac)
        authorizer = chain[0] if len(chain) == 1 else UnionAuthorizer(chain)
        if rbac is not None:
            # Every registry holds this chain: the escalation check joins it once the authorizer exists.
            self.admission.plugins = (*self.admission.plugins, RbacEscalation(authorizer, rbac))
        return authorizer

    def _rbac(self) -> RbacAuthorizer:
        caches = [self._cache(RBAC_GROUP, plural) for plural in RBAC_PLURALS]

        def token() -> tuple[int, ...]:
            return tuple(c.changes for c in caches)

        def read() -> RbacObjects:
            roles, role_bindings, cluster_roles, cluster_role_bindings = (
                [cached.obj for cached in c.snapshot(None)[1]] for c in caches
            )
            return roles, role_bindings, cluster_roles, cluster_role_bindings

        return RbacAuthorizer(token, read)

    async def _bootstrap(self) -> None:
        assert self._services is not None and self.secure_address is not None
        await bootstrap_mod.repair_once(self.served, self._services)
        address = bootstrap_mod.advertise_address(self.config.bind_address)
        await bootstrap_mod.bootstrap(self.served, self._services, address, self.secure_address[1])
        if "RBAC" in self.config.authorization_modes:
            await reconcile_policy(self.served)  # upstream's rbac/bootstrap-roles post-start hook
        self._bootstrapped = True
        self._repairer = asyncio.create_task(bootstrap_mod.repair_periodically(self.served, self._services))

    async def _bootstrap_check(self) -> str | None:
        return None if self._bootstrapped else "not finished"

    async def _add_site(self, site: web.BaseSite) -> None:
        await site.start()
        self._sites.append(site)

    async def _build_resources(self, store: Store) -> None:
        config = self.config
        self._services = ServiceAllocations(store, config.service_cluster_ip_range, config.service_node_port_range)
        served_reader = bootstrap_mod.ServedReader(self.served)
        self.admission = default_chain(
            served_reader,
            authorize_signer=self._authorize_signer,
            webhook_views={"scale": scale_mod.SCALE_VIEW},
            quota_writer=served_reader,
        )
        table = self.table
        if table is None:
            from skiff.registry.builtin import BUILTIN

            table = BUILTIN
        for info in table:
            storage = storage_for(store, self._encryption, info.group, info.plural)
            cache = WatchCache(storage, info)
            self._caches.append(cache)
            self.served.add(info, bootstrap_mod.make_registry(storage, info, cache, self.admission, self._services))
        await asyncio.gather(*(cache.start() for cache in self._caches))

    async def _store_check(self) -> str | None:
        if self.store is None:
            return "no store"
        try:
            async with asyncio.timeout(2):
                await self.store.status()
        except (StoreError, TimeoutError, OSError) as err:
            return f"store unavailable: {err or type(err).__name__}"
        return None

    async def _caches_check(self) -> str | None:
        waiting = [c.info.plural for c in self._caches if not c.ready]
        return f"watch caches not ready: {', '.join(waiting)}" if waiting else None

    async def stop(self) -> None:
        for site in self._sites:
            await site.stop()
        if self._crds is not None:
            await self._crds.stop()
        for cache in self._caches:
            await cache.stop()
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()
        for task in (self._compactor, self._repairer, *self._reloaders):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._own_store and self.store is not None:
            await self.store.close()
        if self._auditor is not None:
            await asyncio.to_thread(self._auditor.close)


async def _ok() -> str | None:
    return None
