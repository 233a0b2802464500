"""Benchmark commands (`stratumkit bench ...`): every performance figure we quote comes from here."""
