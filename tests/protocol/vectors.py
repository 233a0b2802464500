"""Real Stratum wire lines, pinned as test vectors, with where each one comes from.

Miner lines are the miners' own ``printf`` format strings filled in with sample values (ids,
worker names and hex chosen by us; spacing, key order, quoting and terminators are the
miner's). Pool lines are quoted from published captures and specifications.

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
