"""The miner side: a trio Stratum client, work building, a CPU miner, and the rig agent."""
