"""One script of etcdctl commands, run against the facade and against a fresh real etcd 3.5.1.

Both servers start empty, with the same member name, advertised peer URL and
cluster token, so the cluster and member ids in headers must match too.  The
outputs (stdout, stderr and exit code of every command) are compared byte for
byte after ``normalise``, which replaces only what cannot match:

* each server's own endpoint address (``127.0.0.1:PORT``) -> ``<endpoint>``;
* lease ids, which etcd draws at random -> ``<lease>`` (as etcdctl prints them, 16 hex digits);
* timings: ``took = 2.1ms`` / ``"took":"2.1ms"`` -> ``<took>``, and a lease's
  ``remaining(99s)`` -> ``remaining(<s>)`` (a second may tick between grant and read);
* database sizes (bbolt vs SQLite): ``"dbSize":N`` / ``"dbSizeInUse":N`` -> ``<size>``;
* etcdctl's own client-side warning logs carry a timestamp and a Go pointer
  (3.5) or a random client id (3.4): ``"ts":"..."`` -> ``<ts>``,
  ``0xc000123abc`` -> ``<ptr>``, ``client-<uuid>`` -> ``client-<id>``.

The raft index is not normalised: the facade counts what a fresh etcd appends.

The script runs with etcdctl 3.5.1 and with etcdctl 3.4.23 (each against a
fresh pair of servers).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from facade_harness import ETCD_PROCESS_TOKEN, FacadeProcess, etcdctl, etcdctl_watch

from conftest import etcd_binary
from skiff.etcd_binaries import EtcdBinary
from skiff.store.etcd_process import EtcdMember

pytestmark = pytest.mark.timeout(240)

#: Marks the end of the history a ``watch --rev=1`` replays (the last key written before it).
END_KEY, END_VALUE = "zz-end", "the-end"


@dataclass(frozen=True)
class Step:
    """One etcdctl invocation; ``{lease}`` in args is that server's lease id (hex)."""

    args: tuple[str, ...]
    stdin: str | None = None
    watch_until: str | None = None  # a watch: read until this line, then stop it

    def label(self) -> str:
        return "etcdctl " + " ".join(self.args)


def step(*args: str, stdin: str | None = None) -> Step:
    return Step(tuple(args), stdin)


def watch(*args: str, until: str) -> Step:
    return Step(("watch", *args), watch_until=until)


TXN_SUCCEEDS = 'mod("a") = "2"\n\nput a from-txn\nget b\n\nput a not-this\n\n'
TXN_FAILS = 'value("a") = "nope"\nversion("b") > "0"\n\nput a never\n\nget a\ndel b --prev-kv\n\n'
TXN_MIXED = 'create("missing") = "0"\nmod("foo/y") < "100"\n\nput foo/z 30\nget foo --prefix\n\n\n'

SCRIPT: tuple[Step, ...] = (
    step("put", "a", "1"),
    step("put", "b", "2"),
    step("put", "foo/x", "10"),
    step("put", "foo/y", "20", "-w", "json"),
    step("put", "foo/x", "11", "--prev-kv"),
    step("get", "a"),
    step("get", "missing"),
    step("get", "foo", "--prefix"),
    step("get", "foo", "--prefix", "-w", "fields"),
    step("get", "foo", "--prefix", "-w", "json"),
    step("get", "a", "--from-key", "--keys-only"),
    step("get", "", "--prefix", "--limit=2", "-w", "json"),
    step("get", "", "--from-key", "--limit=1", "-w", "fields"),
    step("get", "foo/x", "--rev=4"),
    step("get", "foo", "--prefix", "--count-only", "-w", "fields"),
    step("get", "foo", "--prefix", "--print-value-only"),
    step("get", "foo", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"),
    step("get", "a", "foo/y", "-w", "json"),
    step("get", "z", "a", "-w", "json"),  # inverted range: empty, as etcd
    step("get", "a", "--rev=-1", "-w", "json"),  # negative revision: the current one, as etcd
    step("get", "a", "--consistency=s", "-w", "fields"),
    step("txn", stdin=TXN_SUCCEEDS),
    step("txn", "-w", "json", stdin=TXN_FAILS),
    step("txn", "-w", "fields", stdin=TXN_MIXED),
    step("del", "b", "--prev-kv"),
    step("del", "nothing-here"),
    step("del", "foo", "--prefix", "-w", "json"),
    step("del", "z", "a"),  # inverted range: nothing deleted
    step("put", "foo/x", "again"),
    step("put", END_KEY, END_VALUE),
    watch("--rev=1", "", "--prefix", until=END_VALUE),
    watch("--rev=3", "foo/x", "--prev-kv", until="again"),
    step("lease", "grant", "100"),
    step("put", "leased", "v", "--lease={lease}"),
    step("lease", "timetolive", "{lease}", "--keys"),
    step("lease", "keep-alive", "--once", "{lease}"),
    step("lease", "list"),
    step("lease", "revoke", "{lease}"),
    step("get", "leased"),
    step("lease", "timetolive", "{lease}"),
    step("lease", "revoke", "1234abcd"),
    step("lease", "keep-alive", "--once", "1234abcd"),
    step("put", "x", "y", "--lease=1234abcd"),
    step("compaction", "5"),
    step("compaction", "3"),
    step("compaction", "1000"),
    step("get", "a", "--rev=2"),
    step("get", "a", "--rev=1000"),
    watch("--rev=2", "a", until="never"),  # compacted: etcdctl reports it and exits
    step("compaction", "--physical", "8"),
    step("get", "", "--prefix", "-w", "json"),
    step("put", "", "empty-key"),
    step("endpoint", "health"),
    step("endpoint", "health", "-w", "json"),
    step("endpoint", "status", "-w", "json"),
    step("member", "list", "-w", "json"),
    step("member", "list"),
)


def normalise(text: str, endpoint: str, lease_ids: list[int]) -> str:
    text = text.replace(endpoint, "<endpoint>")
    for lease in lease_ids:
        text = text.replace(f"{lease:016x}", "<lease>")
    text = re.sub(r"took = \S+", "took = <took>", text)
    text = re.sub(r'"took":"[^"]*"', '"took":"<took>"', text)
    text = re.sub(r"remaining\(\d+s\)", "remaining(<s>)", text)
    text = re.sub(r'"(dbSize|dbSizeInUse)":\d+', r'"\1":<size>', text)
    text = re.sub(r'"ts":"[^"]*"', '"ts":"<ts>"', text)
    text = re.sub(r"0xc[0-9a-f]+", "<ptr>", text)
    text = re.sub(r"client-[0-9a-f-]{36}", "client-<id>", text)
    return text


async def run_script(binary: EtcdBinary, endpoint: str) -> list[str]:
    """Every step's normalised output, in order."""
    outputs: list[str] = []
    leases: list[int] = []
    for s in SCRIPT:
        args = [a.replace("{lease}", f"{leases[-1]:x}" if leases else "0") for a in s.args]
        if s.watch_until is not None:
            text = await etcdctl_watch(binary, endpoint, *args[1:], until_line=s.watch_until)
        else:
            text = (await etcdctl(binary, endpoint, *args, stdin=s.stdin)).text()
        if match := re.match(r"lease ([0-9a-f]{16}) granted", text):
            leases.append(int(match.group(1), 16))
        outputs.append(f"$ {s.label()}\n{normalise(text, endpoint, leases)}")
    return outputs


@dataclass
class Pair:
    etcd: EtcdMember
    facade: FacadeProcess


@pytest_asyncio.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Pair]:
    """A fresh real etcd 3.5.1 and a fresh facade posing as the same member."""
    member = await EtcdMember.start(etcd_binary("3.5.1"), tmp_path / "etcd")
    try:
        facade = await FacadeProcess.start(
            tmp_path / "facade", name="default", peer_url=member.peer_url, token=ETCD_PROCESS_TOKEN
        )
        try:
            yield Pair(member, facade)
        finally:
            assert await facade.stop() == 0, facade.log()
    finally:
        await member.stop()


@pytest.mark.parametrize("etcdctl_version", ["3.5.1", "3.4.23"])
async def test_etcdctl_script_matches_real_etcd(servers: Pair, etcdctl_version: str) -> None:
    client = etcd_binary(etcdctl_version)
    expected = await run_script(client, servers.etcd.endpoint)
    got = await run_script(client, servers.facade.endpoint)
    for want, have in zip(expected, got, strict=True):
        assert have == want
