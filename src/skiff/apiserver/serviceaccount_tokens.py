"""ServiceAccount tokens: the TokenRequest subresource and the JWT authenticator.

As kube-apiserver (pkg/registry/core/serviceaccount/storage/token.go,
pkg/serviceaccount):

* ``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`` takes an
  authentication.k8s.io/v1 TokenRequest.  ``expirationSeconds`` defaults to
  3600 and must lie in [600, 2^32] (422 otherwise); empty ``audiences`` become
  the API server's audiences (the issuer).  An optional ``boundObjectRef``
  (Pod, Secret or Node) must exist, match its ``uid`` when given (409) and,
  for a Pod, run as this account (400).  The answer is the request with
  ``status.token`` and ``status.expirationTimestamp``, 201.
* The token is a JWT signed with ``--service-account-signing-key-file``
  (default ``pki/sa.key``; ES256 for an EC P-256 key, RS256 for an RSA one;
  ``kid`` = base64url of the SHA-256 of the public key's DER, as upstream)
  with upstream's claims: iss, sub ``system:serviceaccount:NS:NAME``,
  aud, exp, iat, nbf, jti and the private ``kubernetes.io`` claim naming the
  namespace, the account (name, uid) and the bound objects.
* Verification keys: the signing key's public half and every key in each
  ``--service-account-key-file`` (repeatable; PEM public keys, certificates or
  private keys, several to a file, as upstream).  Passing the old public key
  there while signing with a new key rotates keys without invalidating issued
  tokens.  Unlike upstream, the signing key's own public key is always one of
  them (upstream verifies only with the key files, so kubeadm lists ``sa.pub``).
* ``ServiceAccountTokenAuthenticator`` accepts such a token when the
  signature (by the key its ``kid`` names, else by any verification key),
  issuer, audience (one of the API audiences) and times check out
  (60 s leeway, like go-jose) and the account and bound pod/secret/node still
  exist with the same uids (and were not deleted over a minute ago).  The user is
  ``system:serviceaccount:NS:NAME`` (uid = the account's) in
  ``system:serviceaccounts``, ``system:serviceaccounts:NS`` and
  ``system:authenticated``, with the pod and credential-id extras.

* OIDC discovery, so that other systems can verify these tokens without the
  API server: ``/.well-known/openid-configuration`` (issuer, ``jwks_uri`` =
  ``<issuer>/openid/v1/jwks``, the keys' algorithms, public subjects) and ``/openid/v1/jwks``
  (``application/jwk-set+json``: every verification key as a JWK with its ``kid``).
  Like upstream they need an authenticated caller (upstream grants them to
  ``system:serviceaccounts`` through system:service-account-issuer-discovery).

Not done: the legacy Secret-based tokens, ``--service-account-max-token-expiration``,
the kubelet's 3607 s "warn-only" extended expiry.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from skiff.api.status import Cause, bad_request, conflict, invalid, method_not_allowed, not_found
from skiff.apiserver import bodies
from skiff.apiserver.auth import AUTHENTICATED_GROUP, UserInfo
from skiff.apiserver.negotiation import body_media_type
from skiff.apiserver.request_info import RequestInfo
from skiff.client.timefmt import parse_rfc3339, rfc3339
from skiff.registry.admission.chain import ObjectReader

log = logging.getLogger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION_S = 3600
MIN_EXPIRATION_S = 600
MAX_EXPIRATION_S = 1 << 32
LEEWAY_S = 60
ALGORITHM = "ES256"
RSA_ALGORITHM = "RS256"
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
AUTHENTICATION_V1 = "authentication.k8s.io/v1"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
#: Bound object kinds: kind -> (plural, namespaced).
BOUND_KINDS = {"Pod": ("pods", True), "Secret": ("secrets", True), "Node": ("nodes", False)}


def is_token_request(ri: RequestInfo) -> bool:
    return (
        not ri.group
        and ri.version == "v1"
        and ri.resource == "serviceaccounts"
        and ri.subresource == "token"
        and bool(ri.name and ri.namespace)
        and not ri.extra
    )


PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key tokens may be signed with: its ``kid`` and JWS algorithm."""

    public: PublicKey
    kid: str
    algorithm: str


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: PrivateKey
    public: PublicKey
    kid: str
    algorithm: str = ALGORITHM

    @property
    def verification(self) -> VerificationKey:
        return VerificationKey(self.public, self.kid, self.algorithm)


def verification_key(public: object, where: str = "key") -> VerificationKey:
    """The verification key of an EC P-256 (ES256) or RSA (RS256) public key; ValueError for others."""
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        algorithm = ALGORITHM
    elif isinstance(public, rsa.RSAPublicKey):
        algorithm = RSA_ALGORITHM
    else:
        raise ValueError(f"{where}: expected an EC P-256 or RSA key")
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    return VerificationKey(public, kid, algorithm)


def load_signing_key(private_path: Path) -> SigningKey:
    """Blocking (file I/O): call through ``asyncio.to_thread``."""
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{private_path}: expected an EC P-256 or RSA private key")
    found = verification_key(key.public_key(), str(private_path))
    return SigningKey(key, found.public, found.kid, found.algorithm)


def load_verification_keys(paths: Sequence[Path]) -> list[VerificationKey]:
    """Every key of each ``--service-account-key-file``, in order: PEM public keys, certificates or private
    keys (their public halves); ValueError when a file has none or one is not EC P-256 or RSA.

    Blocking (file I/O): call through ``asyncio.to_thread``.
    """
    return [key for path in paths for key in _keys_of(path)]


def _keys_of(path: Path) -> list[VerificationKey]:
    keys: list[VerificationKey] = []
    for number, block in enumerate(_PEM_BLOCK.finditer(path.read_bytes()), start=1):
        kind, pem = block.group(1).decode(), block.group(0)
        where = f"{path}: PEM block {number} ({kind})"
        public: object
        if kind == "CERTIFICATE":
            public = x509.load_pem_x509_certificate(pem).public_key()
        elif kind.endswith("PRIVATE KEY"):
            public = serialization.load_pem_private_key(pem, password=None).public_key()
        elif kind.endswith("PUBLIC KEY"):
            public = serialization.load_pem_public_key(pem)
        else:
            continue
        keys.append(verification_key(public, where))
    if not keys:
        raise ValueError(f"{path}: no PEM public key, certificate or private key in it")
    return keys


def public_jwk(key: SigningKey | VerificationKey) -> dict[str, str]:
    """RFC 7517/7518 JWK of a public key, as kube-apiserver publishes it (use sig, alg, kid)."""

    def b64(value: int, size: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()

    if isinstance(key.public, rsa.RSAPublicKey):
        rsa_numbers = key.public.public_numbers()
        e_size = (rsa_numbers.e.bit_length() + 7) // 8
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": key.kid,
            "alg": RSA_ALGORITHM,
            "n": b64(rsa_numbers.n, (key.public.key_size + 7) // 8),
            "e": b64(rsa_numbers.e, e_size),
        }
    numbers = key.public.public_numbers()
    size = (key.public.curve.key_size + 7) // 8
    return {
        "use": "sig",
        "kty": "EC",
        "kid": key.kid,
        "crv": "P-256",
        "alg": ALGORITHM,
        "x": b64(numbers.x, size),
        "y": b64(numbers.y, size),
    }


def _ref(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {"name": str(meta.get("name", "")), "uid": str(meta.get("uid", ""))}


class ServiceAccountTokens:
    """Issues (TokenRequest) and authenticates (``TokenAuthenticator``) ServiceAccount JWTs."""

    def __init__(
        self,
        reader: ObjectReader,
        key: SigningKey,
        issuer: str = DEFAULT_ISSUER,
        audiences: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        verification_keys: Sequence[VerificationKey] = (),
    ) -> None:
        self.reader = reader
        self.key = key
        self.issuer = issuer
        self.audiences = audiences or (issuer,)
        self.clock = clock
        #: By kid: the signing key's public half first, then --service-account-key-file's.
        self.verification_keys = {k.kid: k for k in (key.verification, *verification_keys)}

    # -- OIDC discovery --------------------------------------------------------------------------
    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer.rstrip('/')}{JWKS_PATH}",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.algorithm for k in self.verification_keys.values()}),
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k) for k in self.verification_keys.values()]}

    # -- TokenRequest ----------------------------------------------------------------------------
    async def handle(
        self, request: web.Request, ri: RequestInfo, admit: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    ) -> web.Response:
        """POST serviceaccounts/token; ``admit`` runs the admission chain on the TokenRequest first
        (NodeRestriction's bound-pod rule), as upstream's create handler does."""
        if request.method.upper() != "POST":
            raise method_not_allowed(ri.verb, "serviceaccounts/token")
        body = await request.read()
        bodies.check_size(body)
        obj: dict[str, Any] = {}
        if body.strip():
            obj, _ = bodies.decode_object(body, body_media_type(request.headers.get("Content-Type")))
        if admit is not None:
            await admit(obj)
        out = await self.token_request(ri.namespace, ri.name, obj)
        return web.Response(status=201, body=orjson.dumps(out), headers={"Content-Type": "application/json"})

    async def token_request(self, namespace: str, name: str, req: dict[str, Any]) -> dict[str, Any]:
        """The TokenRequest answer (request + status) for account ``namespace/name``."""
        meta = dict(req.get("metadata") or {})
        spec = dict(req.get("spec") or {})
        _check_names(meta, namespace, name)
        account = await self.reader.get("", "serviceaccounts", namespace, name)
        if account is None:
            raise not_found("serviceaccounts", "", name)
        spec["audiences"] = list(spec.get("audiences") or self.audiences)
        if spec.get("expirationSeconds") is None:  # kubectl sends null
            spec["expirationSeconds"] = DEFAULT_EXPIRATION_S
        _validate(spec, name)
        meta.setdefault("name", name)
        meta.setdefault("namespace", namespace)
        now = self.clock()
        meta["creationTimestamp"] = rfc3339(now)
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": _ref(account)}
        if spec.get("boundObjectRef") is None:
            spec.pop("boundObjectRef", None)
        else:
            private.update(await self._bound(namespace, name, spec["boundObjectRef"]))
        expires = int(now) + int(spec["expirationSeconds"])
        claims = {
            "iss": self.issuer,
            "sub": f"{USER_PREFIX}{namespace}:{name}",
            "aud": spec["audiences"],
            "exp": expires,
            "iat": int(now),
            "nbf": int(now),
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
        }
        token = jwt.encode(claims, self.key.private, algorithm=self.key.algorithm, headers={"kid": self.key.kid})
        return {
            "kind": "TokenRequest",
            "apiVersion": AUTHENTICATION_V1,
            "metadata": meta,
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
        }

    async def _bound(self, namespace: str, account: str, ref: dict[str, Any]) -> dict[str, Any]:
        """The private claims naming the bound object (and a pod's node), checked as upstream."""
        kind = str(ref.get("kind", ""))
        api_version = str(ref.get("apiVersion", "v1"))
        if kind not in BOUND_KINDS or api_version not in ("v1", ""):
            raise bad_request(f"cannot bind token to object of type {api_version}, Kind={kind}")
        plural, namespaced = BOUND_KINDS[kind]
        ref_name = str(ref.get("name", ""))
        obj = await self.reader.get("", plural, namespace if namespaced else "", ref_name)
        if obj is None:
            raise not_found(plural, "", ref_name)
        found = _ref(obj)
        if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName", "default") != account:
            raise bad_request(
                f'cannot bind token for serviceaccount "{account}" to pod running with different serviceaccount name.'
            )
        if ref.get("uid") and ref["uid"] != found["uid"]:
            why = (
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                "The object might have been deleted and then recreated"
            )
            raise conflict(kind, "", ref_name, why)
        claims: dict[str, Any] = {kind.lower(): found}
        node_name = (obj.get("spec") or {}).get("nodeName") if kind == "Pod" else None
        if node_name:
            node = await self.reader.get("", "nodes", "", str(node_name))
            if node is not None:
                claims["node"] = _ref(node)
        return claims

    # -- authentication --------------------------------------------------------------------------
    async def authenticate_token(self, token: str) -> UserInfo | None:
        found = await self.authenticate_for(token, self.audiences)
        return found[0] if found else None

    async def authenticate_for(self, token: str, audiences: tuple[str, ...]) -> tuple[UserInfo, tuple[str, ...]] | None:
        """The user and which of ``audiences`` the token names (TokenReview with spec.audiences asks this)."""
        if token.count(".") != 2 or not token.startswith("eyJ"):
            return None
        claims = self._verified_claims(token, audiences)
        if claims is None:
            return None
        user = await self._user(claims)
        if user is None:
            return None
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        return user, tuple(a for a in audiences if a in aud)

    def _verified_claims(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any] | None:
        """The claims when a verification key's signature and the standard claims check out.

        The key the header's ``kid`` names is tried alone; without a known ``kid`` every key is tried,
        as upstream's verifier does.
        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as err:
            log.debug("service account token rejected: %s", err)
            return None
        named = self.verification_keys.get(kid) if isinstance(kid, str) else None
        candidates = [named] if named is not None else list(self.verification_keys.values())
        for candidate in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    candidate.public,
                    algorithms=[candidate.algorithm],
                    audience=list(audiences),
                    issuer=self.issuer,
                    leeway=LEEWAY_S,
                    options={"require": ["exp", "iss", "sub", "aud"]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
                continue  # not this key's signature
            except jwt.InvalidTokenError as err:
                log.debug("service account token rejected: %s", err)
                return None
            return claims
        log.debug("service account token rejected: no verification key matches its signature")
        return None

    async def _user(self, claims: dict[str, Any]) -> UserInfo | None:
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        namespace = str(private.get("namespace", ""))
        account_ref = private.get("serviceaccount") or {}
        name = str(account_ref.get("name", ""))
        if claims.get("sub") != f"{USER_PREFIX}{namespace}:{name}":
            return None
        account = await self._live("serviceaccounts", namespace, account_ref)
        if account is None:
            return None
        extra: dict[str, tuple[str, ...]] = {}
        for kind, (plural, namespaced) in BOUND_KINDS.items():
            ref = private.get(kind.lower())
            if not isinstance(ref, dict):
                continue
            if kind != "Node" or "pod" not in private:  # a pod's node is informational, as upstream
                if await self._live(plural, namespace if namespaced else "", ref) is None:
                    return None
            if kind in ("Pod", "Node"):
                extra[f"authentication.kubernetes.io/{kind.lower()}-name"] = (str(ref.get("name", "")),)
                extra[f"authentication.kubernetes.io/{kind.lower()}-uid"] = (str(ref.get("uid", "")),)
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = (f"JTI={claims['jti']}",)
        groups = (ALL_GROUP, f"{ALL_GROUP}:{namespace}", AUTHENTICATED_GROUP)
        return UserInfo(f"{USER_PREFIX}{namespace}:{name}", str(account_ref.get("uid", "")), groups, extra)

    async def _live(self, plural: str, namespace: str, ref: dict[str, Any]) -> dict[str, Any] | None:
        """The referenced object when it still exists with the token's uid and is not being deleted."""
        name = str(ref.get("name", ""))
        obj = await self.reader.get("", plural, namespace, name) if name else None
        if obj is None:
            log.info("service account token: %s %s/%s no longer exists", plural, namespace, name)
            return None
        meta = obj.get("metadata") or {}
        if meta.get("uid") != ref.get("uid"):
            log.info("service account token: %s %s/%s was recreated (uid differs)", plural, namespace, name)
            return None
        deleted = meta.get("deletionTimestamp")
        if deleted and parse_rfc3339(str(deleted)) < self.clock() - LEEWAY_S:
            # Upstream's grace: a terminating pod keeps its token a minute past its deletionTimestamp.
            log.info("service account token: %s %s/%s was deleted", plural, namespace, name)
            return None
        return obj


def _check_names(meta: dict[str, Any], namespace: str, name: str) -> None:
    if meta.get("name") and meta["name"] != name:
        cause = Cause("FieldValueInvalid", "must match the service account name if specified", "metadata.name")
        raise invalid("TokenRequest", "authentication.k8s.io", name, [cause])
    if meta.get("namespace") and meta["namespace"] != namespace:
        cause = Cause(
            "FieldValueInvalid", "must match the service account namespace if specified", "metadata.namespace"
        )
        raise invalid("TokenRequest", "authentication.k8s.io", name, [cause])


def _validate(spec: dict[str, Any], name: str) -> None:
    """Upstream's ValidateTokenRequest: the expiry bounds."""
    seconds = spec.get("expirationSeconds")
    message = ""
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        message = "must be an integer"
    elif seconds < MIN_EXPIRATION_S:
        message = "may not specify a duration less than 10 minutes"
    elif seconds > MAX_EXPIRATION_S:
        message = "may not specify a duration larger than 2^32 seconds"
    if message:
        cause = Cause("FieldValueInvalid", f"Invalid value: {seconds}: {message}", "spec.expirationSeconds")
        raise invalid("TokenRequest", "authentication.k8s.io", name, [cause])
