"""Tests of the sans-I/O Stratum V1 protocol package."""
