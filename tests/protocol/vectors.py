"""Real Stratum wire lines, pinned as test vectors, with where each one comes from.

Miner lines are the miners' own ``printf`` format strings filled in with sample values (ids,
worker names and hex chosen by us; spacing, key order, quoting and terminators are the
miner's). Pool lines are quoted from published captures and specifications. The last section
holds whole connections of real miners to this pool, captured on the wire (``Capture``).

Sources:
- cpuminer 2.5.1 (pooler/cpuminer): util.c ``stratum_subscribe`` / ``stratum_authorize`` /
  ``stratum_get_version``, cpu-miner.c ``submit_upstream_work``; ``stratum_send_line`` appends
  ``"\\n"``. Every share goes out as ``"id":4``.
- cpuminer-opt (JayDDee/cpuminer-opt): util.c, ``mining.extranonce.subscribe`` as id 3 after
  authorize.
- cgminer 4.11 (kanoi/cgminer): util.c ``initiate_stratum``, ``auth_stratum``,
  ``configure_stratum_mining`` (USE_VMASK builds), ``send_version``, ``send_pong``; cgminer.c
  ``submit_work`` (5 params, 6 with a version mask); ids from the global ``swork_id``.
- ESP-Miner / bitaxe (bitaxeorg/ESP-Miner): components/stratum/stratum_api.c,
  ``STRATUM_V1_configure_version_rolling`` / ``_subscribe`` / ``_suggest_difficulty`` /
  ``_extranonce_subscribe`` / ``_authorize`` / ``_submit_share`` (``"jsonrpc": "2.0"``, six
  submit params formatted ``%08lx``).
- bfgminer 5.x (luke-jr/bfgminer): util.c ``initiate_stratum``. With ``--request-diff`` it sends
  ``mining.suggest_target`` as a notification (``"id": null``, a 64-hex-digit big-endian target
  from ``pdiff_target_leadzero``) *before* ``mining.subscribe``, then takes the very next line
  for the subscribe answer; ``?goalreset`` in the pool URL adds a ``mining.capabilities``
  notification, ``?xnsub`` a ``mining.extranonce.subscribe`` with the id ``"xnsub"``.
  ``__stratum_send`` appends ``"\n"``.
- NiceHash extranonce subscription spec (nicehash.com/help/patches-for-extranoncesubscription).
- BIP310 (bitcoin/bips bip-0310.mediawiki): mining.configure and set_version_mask examples.
- Pool replies: the original Stratum mining protocol documentation example (slush), an
  f2pool session capture and a ckpool (solo.ckpool.org) ``mining.notify`` copied from a bitaxe
  log (skot/pool_checkr README).
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Miner -> pool


@dataclass(frozen=True)
class MinerLine:
    source: str
    line: bytes


CPUMINER_SUBSCRIBE = MinerLine(
    "cpuminer util.c stratum_subscribe",
    b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}\n',
)
CPUMINER_SUBSCRIBE_RESUME = MinerLine(
    "cpuminer util.c stratum_subscribe with a session id",
    b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1", "ae6812eb4cd7735a302a8a9dd95cf71f"]}\n',
)
CPUMINER_SUBSCRIBE_RETRY = MinerLine(
    "cpuminer util.c stratum_subscribe retry without params",
    b'{"id": 1, "method": "mining.subscribe", "params": []}\n',
)
CPUMINER_AUTHORIZE = MinerLine(
    "cpuminer util.c stratum_authorize",
    b'{"id": 2, "method": "mining.authorize", "params": ["tb1qworker.cpu0", "x"]}\n',
)
CPUMINER_SUBMIT = MinerLine(
    "cpuminer cpu-miner.c submit_upstream_work",
    b'{"method": "mining.submit", "params": ["tb1qworker.cpu0", "bf", "00000001", "504e86ed", "b2957c02"], "id":4}\n',
)
CPUMINER_GET_VERSION_REPLY = MinerLine(
    "cpuminer util.c stratum_get_version (jansson json_dumps)",
    b'{"id": 1, "error": null, "result": "cpuminer/2.5.1"}\n',
)
CPUMINER_OPT_EXTRANONCE_SUBSCRIBE = MinerLine(
    "cpuminer-opt util.c stratum_authorize (extranonce option)",
    b'{"id": 3, "method": "mining.extranonce.subscribe", "params": []}\n',
)

CGMINER_CONFIGURE = MinerLine(
    "cgminer util.c configure_stratum_mining",
    b'{"id": 0, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}\n',
)
CGMINER_SUBSCRIBE = MinerLine(
    "cgminer util.c initiate_stratum",
    b'{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.11.1"]}\n',
)
CGMINER_AUTHORIZE = MinerLine(
    "cgminer util.c auth_stratum",
    b'{"id": 2, "method": "mining.authorize", "params": ["tb1qworker.asic", "pass"]}\n',
)
CGMINER_SUGGEST_DIFFICULTY = MinerLine(
    "cgminer util.c auth_stratum (--suggest-diff)",
    b'{"id": 3, "method": "mining.suggest_difficulty", "params": [512]}\n',
)
CGMINER_SUBMIT = MinerLine(
    "cgminer cgminer.c submit_work",
    b'{"params": ["tb1qworker.asic", "6920bab400003e78", "0000000000000001", "6927b489", '
    b'"1d2c3b4a"], "id": 5, "method": "mining.submit"}\n',
)
CGMINER_SUBMIT_VMASK = MinerLine(
    "cgminer cgminer.c submit_work with pool->vmask",
    b'{"params": ["tb1qworker.asic", "6920bab400003e78", "0000000000000002", "6927b489", '
    b'"1d2c3b4a", "00006000"], "id": 6, "method": "mining.submit"}\n',
)
CGMINER_GET_VERSION_REPLY = MinerLine(
    "cgminer util.c send_version",
    b'{"id": 1, "result": "cgminer/4.11.1", "error": null}\n',
)

BITAXE_CONFIGURE = MinerLine(
    "ESP-Miner stratum_api.c STRATUM_V1_configure_version_rolling",
    b'{"jsonrpc": "2.0", "id": 1, "method": "mining.configure", "params": '
    b'[["version-rolling"], {"version-rolling.mask": "ffffffff"}]}\n',
)
BITAXE_SUBSCRIBE = MinerLine(
    "ESP-Miner stratum_api.c STRATUM_V1_subscribe",
    b'{"jsonrpc": "2.0", "id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1370/v2.4.0"]}\n',
)
BITAXE_SUGGEST_DIFFICULTY = MinerLine(
    "ESP-Miner stratum_api.c STRATUM_V1_suggest_difficulty",
    b'{"jsonrpc": "2.0", "id": 3, "method": "mining.suggest_difficulty", "params": [1000]}\n',
)
BITAXE_EXTRANONCE_SUBSCRIBE = MinerLine(
    "ESP-Miner stratum_api.c STRATUM_V1_extranonce_subscribe",
    b'{"jsonrpc": "2.0", "id": 4, "method": "mining.extranonce.subscribe", "params": []}\n',
)
BITAXE_AUTHORIZE = MinerLine(
    "ESP-Miner stratum_api.c STRATUM_V1_authorize",
    b'{"jsonrpc": "2.0", "id": 5, "method": "mining.authorize", "params": ["bc1qexampleaddress.bitaxe", "x"]}\n',
)
BITAXE_SUBMIT = MinerLine(
    "ESP-Miner stratum_api.c STRATUM_V1_submit_share",
    b'{"jsonrpc": "2.0", "id": 6, "method": "mining.submit", "params": '
    b'["bc1qexampleaddress.bitaxe", "6920bab400003e78", "00000000", "6927b489", '
    b'"a3c0ffee", "1fffe000"]}\n',
)

BFGMINER_SUGGEST_TARGET = MinerLine(
    "bfgminer util.c initiate_stratum (--request-diff 1), before subscribing",
    b'{"id": null, "method": "mining.suggest_target", "params": '
    b'["00000000ffff0000000000000000000000000000000000000000000000000000"]}\n',
)
BFGMINER_CAPABILITIES = MinerLine(
    "bfgminer util.c initiate_stratum (?goalreset, SHA256d-only build, --request-diff 1)",
    b'{"id":null,"method":"mining.capabilities","params":[{"notify":[],"set_difficulty":{},"set_goal":[],'
    b'"malgo":{"SHA256d":{}},"suggested_target":'
    b'"00000000ffff0000000000000000000000000000000000000000000000000000"}]}\n',
)
BFGMINER_SUBSCRIBE = MinerLine(
    "bfgminer util.c initiate_stratum",
    b'{"id": 1, "method": "mining.subscribe", "params": ["bfgminer/5.5.0"]}\n',
)
BFGMINER_EXTRANONCE_SUBSCRIBE = MinerLine(
    "bfgminer util.c initiate_stratum (?xnsub)",
    b'{"id": "xnsub", "method": "mining.extranonce.subscribe", "params": []}\n',
)

NICEHASH_EXTRANONCE_SUBSCRIBE = MinerLine(
    "NiceHash extranonce subscription spec",
    b'{"id": 3, "method": "mining.extranonce.subscribe", "params": []}\n',
)

BIP310_CONFIGURE = MinerLine(
    "BIP310 example request (new-lines removed)",
    b'{"method": "mining.configure", "id": 1, "params": [["minimum-difficulty", '
    b'"version-rolling"], {"minimum-difficulty.value": 2048, "version-rolling.mask": '
    b'"1fffe000", "version-rolling.min-bit-count": 2}]}\n',
)

# --------------------------------------------------------------------------------------------
# Pool -> miner

SLUSH_SUBSCRIBE_RESULT = (
    b'{"id": 1, "result": [ [ ["mining.set_difficulty", "b4b6693b72a50c7116db18d6497cac52"], '
    b'["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]], "08000002", 4], "error": null}\n'
)
SLUSH_NOTIFY = (
    b'{"params": ["bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000", '
    b'"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2002'
    b'0862062f503253482f04b8864e5008", "072f736c7573682f000000000100f2052a010000001976a914d2'
    b'3fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000", [], "00000002", "1c2ac4af", '
    b'"504e86b9", false], "id": null, "method": "mining.notify"}\n'
)
SLUSH_SUBMIT_ACCEPTED = b'{"error": null, "id": 4, "result": true}\n'

F2POOL_SUBSCRIBE_RESULT = (
    b'{"id":1,"result":[[["mining.notify","mining.notify"],'
    b'["mining.set_difficulty","mining.set_difficulty"]],"00",8],"error":null}\n'
)
F2POOL_SET_DIFFICULTY = b'{"id":null, "method":"mining.set_difficulty","params":[8192]}\n'

CKPOOL_NOTIFY = (
    b'{"params":["6920bab400003e78","2054771533c6373887fb44c6081b230c58336592000189f800000000'
    b'00000000","01000000010000000000000000000000000000000000000000000000000000000000000000'
    b'ffffffff3503a61e0e000489b4276904a9b1a0040c","0a636b706f6f6c112f736f6c6f2e636b706f6f6c'
    b"2e6f72672fffffffff039987611200000000220020984a77c289084ff2d434c316bdada021c6c183d507c8"
    b"a20d3b159b09ac02fe28fd0760000000000016001451ed61d2f6aa260cc72cdf743e4e436a82c010270000"
    b"000000000000266a24aa21a9edb0a313a2d4aa37add593e7b0c6bff97083472d58501b3cc1b97ed24fb453"
    b'444900000000",[],"20000000","1701e2a0","6927b489",true],"id":null,"method":"mining.notify"}\n'
)

NICEHASH_SET_EXTRANONCE = b'{"id": null, "method": "mining.set_extranonce", "params": ["08000002", 4]}\n'
NICEHASH_EXTRANONCE_REFUSED = b'{"id": 3, "result": false, "error": [20, "Not supported.", null]}\n'

BIP310_CONFIGURE_RESULT = (
    b'{"error": null, "id": 1, "result": {"version-rolling": true, '
    b'"version-rolling.mask": "18000000", "minimum-difficulty": true}}\n'
)
BIP310_SET_VERSION_MASK = b'{"params":["00003000"], "id":null, "method": "mining.set_version_mask"}\n'


# --------------------------------------------------------------------------------------------
# Captured on the wire: real miners against `stratumkit serve`
#
# Built from their public sources and run with one CPU thread against `stratumkit serve` (the
# embedded chain, default configuration: start difficulty 0.001, block difficulty 0.01) through a
# logging TCP proxy, on 2026-12-01:
# - cpuminer 2.5.1 (pooler/cpuminer tag v2.5.1): `minerd -a sha256d -t 1 -o stratum+tcp://...
#   -u bcrt1qminerd.cpu0 -p x`
# - cpuminer-opt 26.1 (JayDDee/cpuminer-opt v26.1): `cpuminer -a sha256d -t 1 -o ...
#   -u bcrt1qopt.cpu0 -p x`
# - bfgminer 5.5.0 (luke-jr/bfgminer tag bfgminer-5.5.0, CPU driver only): `bfgminer -S cpu:auto
#   --cpu-threads 1 --request-diff 0.004 (or 1) -o stratum+tcp://... -u bcrt1qbfg.cpu0 -p x`
# Each capture is one connection, every line with its time in seconds since the connection
# opened and its direction (">" miner to pool, "<" pool to miner), from the first line to just
# before the pool's first line of its own making (a template refresh, or the next block after a
# share that solved one). Everything in between the pool said in answer to the miner, so a
# session given the miner's lines at their times and the same first job must say exactly the
# pool's lines. The first job is the embedded chain's block 1, fixed by its job id (the id
# counter) and its ntime.


@dataclass(frozen=True)
class Capture:
    miner: str
    job_id: str
    ntime: int
    lines: tuple[tuple[float, str, bytes], ...]

    def miner_lines(self) -> list[tuple[float, bytes]]:
        return [(t, line) for t, direction, line in self.lines if direction == ">"]

    def pool_lines(self) -> list[bytes]:
        return [line for _, direction, line in self.lines if direction == "<"]


MINERD_LINES = (
    (0.018, ">", b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}\n'),
    (
        0.029,
        "<",
        b'{"id":1,"result":[[["mining.set_difficulty","00000000"],["mining.notify","00000000"]],"000'
        b'00000",4],"error":null}\n',
    ),
    (0.031, ">", b'{"id": 2, "method": "mining.authorize", "params": ["bcrt1qminerd.cpu0", "x"]}\n'),
    (0.032, "<", b'{"id":2,"result":true,"error":null}\n'),
    (0.032, "<", b'{"id":null,"method":"mining.set_difficulty","params":[0.001]}\n'),
    (
        0.032,
        "<",
        b'{"id":null,"method":"mining.notify","params":["6619a7de81594","62281e96ae3d79d7e3d8e8d93c3'
        b'f9bf4d61808d59d615964682540446ed4db8b","01000000010000000000000000000000000000000000000000'
        b'000000000000000000000000ffffffff17510c2f7374726174756d6b69742f08","ffffffff0100f2052a01000'
        b'000015100000000",[],"20000000","1d63ff9b","6b0f518a",true]}\n',
    ),
    (0.032, "<", b'{"id":1,"method":"client.get_version","params":[]}\n'),
    (0.04, ">", b'{"id": 1, "error": null, "result": "cpuminer/2.5.1"}\n'),
    (
        8.553,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qminerd.cpu0", "6619a7de81594", "00000000", "'
        b'6b0f518a", "132e2000"], "id":4}\n',
    ),
    (8.565, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        8.998,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qminerd.cpu0", "6619a7de81594", "00000000", "'
        b'6b0f518a", "21ea2600"], "id":4}\n',
    ),
    (9.023, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        12.158,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qminerd.cpu0", "6619a7de81594", "00000000", "'
        b'6b0f518a", "17bf4700"], "id":4}\n',
    ),
    (12.173, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        15.751,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qminerd.cpu0", "6619a7de81594", "00000000", "'
        b'6b0f518a", "454c5e00"], "id":4}\n',
    ),
    (15.761, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        24.581,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qminerd.cpu0", "6619a7de81594", "00000000", "'
        b'6b0f518a", "c7f2b600"], "id":4}\n',
    ),
    (24.586, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        28.54,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qminerd.cpu0", "6619a7de81594", "00000000", "'
        b'6b0f518a", "c7e61401"], "id":4}\n',
    ),
    (28.548, "<", b'{"id":4,"result":true,"error":null}\n'),
)
CPUMINER_OPT_LINES = (
    (0.0, ">", b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer-opt-26.1-x64L"]}\n'),
    (
        0.001,
        "<",
        b'{"id":1,"result":[[["mining.set_difficulty","00000000"],["mining.notify","00000000"]],"000'
        b'00000",4],"error":null}\n',
    ),
    (0.001, ">", b'{"id": 2, "method": "mining.authorize", "params": ["bcrt1qopt.cpu0", "x"]}\n'),
    (0.002, "<", b'{"id":2,"result":true,"error":null}\n'),
    (0.002, "<", b'{"id":null,"method":"mining.set_difficulty","params":[0.001]}\n'),
    (
        0.002,
        "<",
        b'{"id":null,"method":"mining.notify","params":["6619ac1e79565","62281e96ae3d79d7e3d8e8d93c3'
        b'f9bf4d61808d59d615964682540446ed4db8b","01000000010000000000000000000000000000000000000000'
        b'000000000000000000000000ffffffff17510c2f7374726174756d6b69742f08","ffffffff0100f2052a01000'
        b'000015100000000",[],"20000000","1d63ff9b","6b0f55ff",true]}\n',
    ),
    (0.002, "<", b'{"id":1,"method":"client.get_version","params":[]}\n'),
    (0.002, ">", b'{"id": 3, "method": "mining.extranonce.subscribe", "params": []}\n'),
    (0.002, "<", b'{"id":3,"result":true,"error":null}\n'),
    (0.002, ">", b'{"id": 1, "error": null, "result": "cpuminer-opt-26.1-x64L"}\n'),
    (
        1.017,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "eb910200"], "id":4}\n',
    ),
    (1.018, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        1.73,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "4ff33a00"], "id":4}\n',
    ),
    (1.737, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        1.874,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "ad7a4600"], "id":4}\n',
    ),
    (1.875, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        3.968,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "a5bcec00"], "id":4}\n',
    ),
    (3.973, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        6.693,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "e458f901"], "id":4}\n',
    ),
    (6.697, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        7.917,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "63b98b02"], "id":4}\n',
    ),
    (7.918, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        8.545,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "0266d902"], "id":4}\n',
    ),
    (8.546, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        9.102,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "891e1d03"], "id":4}\n',
    ),
    (9.103, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        10.541,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "6f38e803"], "id":4}\n',
    ),
    (10.542, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        10.617,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "8170f303"], "id":4}\n',
    ),
    (10.618, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        10.909,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "f59d1f04"], "id":4}\n',
    ),
    (10.91, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        12.497,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79565", "00000000", "6b0'
        b'f55ff", "0143f504"], "id":4}\n',
    ),
    (12.501, "<", b'{"id":4,"result":true,"error":null}\n'),
    (12.501, "<", b'{"id":null,"method":"mining.set_difficulty","params":[0.004]}\n'),
    (
        12.501,
        "<",
        b'{"id":null,"method":"mining.notify","params":["6619ac1e79566","62281e96ae3d79d7e3d8e8d93c3'
        b'f9bf4d61808d59d615964682540446ed4db8b","01000000010000000000000000000000000000000000000000'
        b'000000000000000000000000ffffffff17510c2f7374726174756d6b69742f08","ffffffff0100f2052a01000'
        b'000015100000000",[],"20000000","1d63ff9b","6b0f5600",false]}\n',
    ),
    (
        12.951,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79566", "00000000", "6b0'
        b'f5600", "37584500"], "id":4}\n',
    ),
    (12.952, "<", b'{"id":4,"result":true,"error":null}\n'),
    (
        13.153,
        ">",
        b'{"method": "mining.submit", "params": ["bcrt1qopt.cpu0", "6619ac1e79566", "00000000", "6b0'
        b'f5600", "3ea65c00"], "id":4}\n',
    ),
    (13.157, "<", b'{"id":4,"result":true,"error":null}\n'),
)
BFGMINER_LINES = (
    (
        0.002,
        ">",
        b'{"id": null, "method": "mining.suggest_target", "params": ["000000f9ffff37ffffffffffffffff'
        b'ffffffffffffffffffffffffffffffffff"]}\n',
    ),
    (0.006, ">", b'{"id": 0, "method": "mining.subscribe", "params": ["bfgminer/5.5.0-unknown"]}\n'),
    (
        0.006,
        "<",
        b'{"id":0,"result":[[["mining.set_difficulty","00000000"],["mining.notify","00000000"]],"000'
        b'00000",4],"error":null}\n',
    ),
    (0.008, ">", b'{"id": "auth", "method": "mining.authorize", "params": ["bcrt1qbfg.cpu0", "x"]}\n'),
    (0.012, "<", b'{"id":"auth","result":true,"error":null}\n'),
    (0.012, "<", b'{"id":null,"method":"mining.set_difficulty","params":[0.00399994]}\n'),
    (
        0.012,
        "<",
        b'{"id":null,"method":"mining.notify","params":["6619aa8609b4e","62281e96ae3d79d7e3d8e8d93c3'
        b'f9bf4d61808d59d615964682540446ed4db8b","01000000010000000000000000000000000000000000000000'
        b'000000000000000000000000ffffffff17510c2f7374726174756d6b69742f08","ffffffff0100f2052a01000'
        b'000015100000000",[],"20000000","1d63ff9b","6b0f5452",true]}\n',
    ),
    (0.012, "<", b'{"id":1,"method":"client.get_version","params":[]}\n'),
    (0.012, ">", b'{"id": 1, "result": "bfgminer/5.5.0-unknown", "error": null}\n'),
    (
        11.973,
        ">",
        b'{"params": ["bcrt1qbfg.cpu0", "6619aa8609b4e", "01000000", "6b0f5452", "38911d00"], "id": '
        b'1, "method": "mining.submit"}\n',
    ),
    (11.975, "<", b'{"id":1,"result":true,"error":null}\n'),
)
BFGMINER_DIFF1_LINES = (
    (
        0.002,
        ">",
        b'{"id": null, "method": "mining.suggest_target", "params": ["00000000ffffffffffffffffffffff'
        b'ffffffffffffffffffffffffffffffffff"]}\n',
    ),
    (0.002, ">", b'{"id": 0, "method": "mining.subscribe", "params": ["bfgminer/5.5.0-unknown"]}\n'),
    (
        0.003,
        "<",
        b'{"id":0,"result":[[["mining.set_difficulty","00000000"],["mining.notify","00000000"]],"000'
        b'00000",4],"error":null}\n',
    ),
    (0.003, ">", b'{"id": "auth", "method": "mining.authorize", "params": ["bcrt1qbfg.cpu0", "x"]}\n'),
    (0.012, "<", b'{"id":"auth","result":true,"error":null}\n'),
    (0.012, "<", b'{"id":null,"method":"mining.set_difficulty","params":[0.010000001515902421]}\n'),
    (
        0.012,
        "<",
        b'{"id":null,"method":"mining.notify","params":["6619ac8424f12","62281e96ae3d79d7e3d8e8d93c3'
        b'f9bf4d61808d59d615964682540446ed4db8b","01000000010000000000000000000000000000000000000000'
        b'000000000000000000000000ffffffff17510c2f7374726174756d6b69742f08","ffffffff0100f2052a01000'
        b'000015100000000",[],"20000000","1d63ff9b","6b0f5669",true]}\n',
    ),
    (0.012, "<", b'{"id":1,"method":"client.get_version","params":[]}\n'),
    (0.02, ">", b'{"id": 1, "result": "bfgminer/5.5.0-unknown", "error": null}\n'),
    (
        20.673,
        ">",
        b'{"params": ["bcrt1qbfg.cpu0", "6619ac8424f12", "01000000", "6b0f5669", "57b84c00"], "id": '
        b'1, "method": "mining.submit"}\n',
    ),
    (20.689, "<", b'{"id":1,"result":true,"error":null}\n'),
)


CAPTURED_MINERD = Capture("cpuminer 2.5.1", "6619a7de81594", 0x6B0F518A, MINERD_LINES)
# Its first difficulty change came with a new job id while it scanned the old one: it held the
# old job (minerd takes new work only when a scan ends, up to 60 s of hashes) and was credited at
# the old job's difficulty. Not in the capture: the change came after a template refresh.
CAPTURED_CPUMINER_OPT = Capture("cpuminer-opt 26.1", "6619ac1e79565", 0x6B0F55FF, CPUMINER_OPT_LINES)
CAPTURED_BFGMINER = Capture("bfgminer 5.5.0 --request-diff 0.004", "6619aa8609b4e", 0x6B0F5452, BFGMINER_LINES)
CAPTURED_BFGMINER_DIFF1 = Capture("bfgminer 5.5.0 --request-diff 1", "6619ac8424f12", 0x6B0F5669, BFGMINER_DIFF1_LINES)
CAPTURES = (CAPTURED_MINERD, CAPTURED_CPUMINER_OPT, CAPTURED_BFGMINER, CAPTURED_BFGMINER_DIFF1)

#: What the pool sent cpuminer 2.5.1 at its SIGTERM (the proxy's port: reconnect_port), and what
#: cpuminer sent on its next connection, resuming its session by the id it was given.
CAPTURED_RECONNECT = b'{"id":null,"method":"client.reconnect","params":["127.0.0.1",45993,2.0]}\n'
CAPTURED_MINERD_RESUME = b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1", "00000000"]}\n'

#: The first bytes bfgminer 5.5.0 sends on every connection to a stratum+tcp URL: a TLS 1.3
#: ClientHello (record header, handshake header, client version; the rest is random per
#: connection). The pool closes it; bfgminer connects again in plain text at once.
CAPTURED_BFGMINER_TLS_PROBE = bytes.fromhex("1603010200010001fc0303")
