"""``skiff user``: client certificates for people, signed by the cluster CA (``create``, ``list``, ``revoke``).

``create NAME [--group G ...]`` signs ``CN=NAME, O=G...`` for ``--duration``
(default 8760h, a year) and writes a kubeconfig for it, to ``--out FILE``
(mode 0600) or to stdout, as ``kubeadm kubeconfig user`` does.  The user can
do nothing until RBAC grants it something.  ``--group system:masters`` (a
cluster administrator, whatever RBAC says) is refused unless
``--allow-masters`` is given too.  ``list`` prints what was issued; ``revoke
NAME`` (every certificate of that user) or ``revoke --serial S`` adds serials
to ``DATA_DIR/pki/revoked-serials``, which running API servers read within a
second (a Skiff extension: ``apiserver.user_certs``).

These work on ``DATA_DIR/pki`` directly (the CA key is there), not through
the API: run them where the data dir is.  Exit codes: 0 done, 1 refused or
failed (the reason on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from pathlib import Path
from typing import Any

import yaml

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import Pki
from skiff.apiserver.user_certs import (
    MASTERS_GROUP,
    IssuedCert,
    default_server,
    issue_user,
    load_registry,
    revoke,
)
from skiff.cli.token import parse_duration

DEFAULT_DURATION = "8760h"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "user",
        help="issue, list and revoke users' client certificates",
        description="Issue, list and revoke client certificates (users) from the cluster CA in DATA_DIR/pki.",
    )
    actions = parser.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="issue a client certificate and write a kubeconfig for it",
        description="Issue a client certificate (CN=NAME, O=each group) and write a kubeconfig for it.",
    )
    create.add_argument("name", help="the user name (the certificate's CN)")
    create.add_argument(
        "--group", action="append", default=[], help="a group the user is in (the certificate's O); repeatable"
    )
    create.add_argument(
        "--duration", default=DEFAULT_DURATION, help=f"lifetime, e.g. 720h or 1h30m (default {DEFAULT_DURATION})"
    )
    create.add_argument(
        "--server",
        default=None,
        help="API server URL in the kubeconfig (default: DATA_DIR/admin.kubeconfig's, else https://127.0.0.1:6443)",
    )
    create.add_argument("--out", default=None, help="write the kubeconfig here, mode 0600 (default: stdout)")
    create.add_argument(
        "--allow-masters",
        action="store_true",
        help=f"allow --group {MASTERS_GROUP}, which makes the user a cluster administrator",
    )
    listing = actions.add_parser("list", help="show issued certificates", description="Show issued certificates.")
    revoking = actions.add_parser(
        "revoke",
        help="revoke a user's certificates, or one by serial",
        description="Revoke every certificate of NAME, or the one with --serial; API servers refuse them at once.",
    )
    which = revoking.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", default=None, help="the user whose certificates to revoke")
    which.add_argument("--serial", default=None, help="the serial (hex) of the certificate to revoke")
    for action in (create, listing, revoking):
        action.add_argument("--data-dir", required=True, help="the cluster's data directory (its pki/ holds the CA)")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    pki = Pki(Path(args.data_dir) / "pki")
    if not pki.ca_cert.exists() or not pki.ca_key.exists():
        print(f"skiff user: no cluster CA in {pki.directory} (start the cluster once first)", file=sys.stderr)
        return 1
    try:
        if args.user_command == "create":
            return await asyncio.to_thread(_create, pki, args)
        if args.user_command == "list":
            return await asyncio.to_thread(_list, pki)
        return await asyncio.to_thread(_revoke, pki, args)
    except (ValueError, LookupError, OSError) as err:
        print(f"skiff user {args.user_command}: {err}", file=sys.stderr)
        return 1


def _create(pki: Pki, args: argparse.Namespace) -> int:
    groups = [g.strip() for g in args.group]
    if MASTERS_GROUP in groups and not args.allow_masters:
        raise ValueError(
            f"group {MASTERS_GROUP} makes {args.name!r} a cluster administrator; add --allow-masters if you mean it"
        )
    seconds = parse_duration(args.duration)
    if seconds <= 0:
        raise ValueError("--duration must be positive (a certificate cannot be valid forever)")
    server = args.server or default_server(Path(args.data_dir))
    record, config = issue_user(pki, server, args.name, groups, datetime.timedelta(seconds=seconds))
    where = "stdout"
    if args.out:
        kubeconfig.write(Path(args.out), config, merge_existing=False)
        where = args.out
    else:
        yaml.safe_dump(config, sys.stdout, default_flow_style=False, sort_keys=False)
        sys.stdout.flush()
    groups_text = ",".join(record.groups) or "none"
    print(
        f"issued {record.name} (groups {groups_text}, serial {record.serial}, valid until {record.not_after}); "
        f"kubeconfig written to {where}",
        file=sys.stderr,
    )
    return 0


def _list(pki: Pki) -> int:
    now = datetime.datetime.now(datetime.UTC)
    rows = [("NAME", "GROUPS", "SERIAL", "NOT AFTER", "STATUS")]
    rows += [(r.name, ",".join(r.groups) or "<none>", r.serial, r.not_after, r.status(now)) for r in load_registry(pki)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(pki: Pki, args: argparse.Namespace) -> int:
    done: list[IssuedCert] = revoke(pki, name=args.name, serial=args.serial)
    for row in done:
        who = row.name or "a certificate not in the registry"
        print(f"revoked serial {row.serial} ({who})")
    return 0
