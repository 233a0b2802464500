"""Harnesses shared by the test directories: waits, miners over real TCP, `stratumkit serve` in a
child process, and loopback ports that cannot be taken by someone else between pick and use."""
