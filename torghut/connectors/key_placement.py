"""Which bytewax worker holds a state key, so a source can read each symbol's rows on that worker.

bytewax 0.21.1 places the state of key ``k`` on worker ``h(k) % worker_count``, where ``h`` is Rust's
``DefaultHasher`` (SipHash-1-3 with zero keys) over the key's UTF-8 bytes followed by ``0xff`` (how Rust
hashes a ``str``), and gives a fixed-partitioned source's partitions to workers round robin in
:meth:`~bytewax.inputs.FixedPartitionedSource.list_parts` order. A replay that puts a symbol in shard
``s`` and keys it by :func:`key_on_worker` (``worker_of(key, shards) == s``) therefore reads every row on
the worker that evaluates it, and no raw row is pickled across processes, as long as the worker count
divides the shard count. :class:`WeightedShards` chooses the shards, giving the account's fewer symbols.

This is a placement detail, never a correctness one: were bytewax to place keys differently, rows would
cross between processes as they do for any other source. ``tests/connectors/test_key_placement.py`` runs
a two-process bytewax cluster and checks the placement against :func:`worker_of`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

_MASK: Final = (1 << 64) - 1


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of ``data`` (Rust's ``DefaultHasher`` algorithm), as an unsigned 64-bit int."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    length = len(data)
    end = length - length % 8
    for start in range(0, end, 8):
        word = int.from_bytes(data[start : start + 8], "little")
        v3 ^= word
        sip_round()
        v0 ^= word
    last = ((length & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return v0 ^ v1 ^ v2 ^ v3


@lru_cache(maxsize=65_536)
def worker_of(key: str, workers: int) -> int:
    """The index (``0 <= i < workers``) of the bytewax worker that holds state key ``key``.

    >>> [worker_of(symbol, 2) for symbol in ("AAPL", "MSFT", "NVDA")]
    [1, 0, 0]
    """
    if workers < 1:
        msg = f"workers must be at least 1, got {workers}"
        raise ValueError(msg)
    return siphash13(key.encode("utf-8", "surrogatepass") + b"\xff") % workers


#: The share of symbols the account's shard takes, relative to every other shard's 1.0. The account stage
#: runs on that shard's worker too (about a fifth of a single process's work in the benchmark), so its
#: worker evaluates fewer symbols and both workers finish together. Only how work is spread depends on it.
ACCOUNT_SHARD_WEIGHT: Final = 0.5


def key_on_worker(symbol: str, worker: int, workers: int) -> str:
    """The state key for ``symbol`` that bytewax places on ``worker``: the symbol itself when it lands there.

    Otherwise ``symbol#n`` for the smallest ``n >= 1`` that does. Keys only place state; every record
    still carries its symbol.

    >>> worker_of("AAPL", 2), key_on_worker("AAPL", 1, 2), key_on_worker("AAPL", 0, 2)
    (1, 'AAPL', 'AAPL#1')
    >>> worker_of("AAPL#1", 2)
    0
    """
    key, suffix = symbol, 0
    while worker_of(key, workers) != worker:
        suffix += 1
        key = f"{symbol}#{suffix}"
    return key


class WeightedShards:
    """Assigns symbols to shards as they first appear: smooth weighted round robin, deterministic.

    Every shard weighs 1.0 except ``light``, which weighs ``light_weight``; each new symbol goes to the
    shard with the largest running credit (ties: the lowest index), which then pays the total weight.

    >>> shards = WeightedShards(2, light=1, light_weight=0.6)
    >>> [shards.next() for _ in range(8)]
    [0, 1, 0, 0, 1, 0, 1, 0]
    """

    def __init__(self, shards: int, *, light: int, light_weight: float = ACCOUNT_SHARD_WEIGHT) -> None:
        self._weights = [light_weight if i == light else 1.0 for i in range(shards)]
        self._total = sum(self._weights)
        self._credit = [0.0] * shards

    def next(self) -> int:
        """The shard of the next new symbol."""
        credit = self._credit
        for i, weight in enumerate(self._weights):
            credit[i] += weight
        best = max(range(len(credit)), key=lambda i: (credit[i], -i))
        credit[best] -= self._total
        return best
