"""The trio layer of the pool: listeners, one task per miner, fan-out, graceful shutdown."""
