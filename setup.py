"""Build glue: setuptools compiles the cffi module described in native/build_sha256d.py."""

from setuptools import setup  # type: ignore[import-untyped, unused-ignore]

setup(cffi_modules=["native/build_sha256d.py:ffibuilder"])
