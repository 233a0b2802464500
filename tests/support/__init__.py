"""Harnesses shared by the test directories: waits, miners over real TCP, `stratumkit serve` in a
child process, loopback ports that cannot be taken by someone else between pick and use, and one
mining session with no I/O (with the replay of a real miner's captured connection through it)."""
