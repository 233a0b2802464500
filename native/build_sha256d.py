"""cffi build script (out-of-line API mode) for stratumkit._sha256d.

`pip install .` runs it through setup.py's cffi_modules; the C lives beside it in native/. The
declarations cffi binds (its cdef) are not repeated here: they are read from sha256d.h, between the
cffi-cdef-begin and cffi-cdef-end markers, so the header is their one copy.
"""

import os
from pathlib import Path

from cffi import FFI  # type: ignore[import-untyped, unused-ignore]

HERE = Path(__file__).resolve().parent
HEADER = HERE / "sha256d.h"
BEGIN, END = "/* cffi-cdef-begin", "/* cffi-cdef-end */"


def declarations(header: str) -> str:
    """The part of the header between the markers, as cffi's cdef text."""
    start = header.find(BEGIN)
    end = header.find(END, start)
    if start < 0 or end < 0:
        raise RuntimeError(f"{HEADER}: no {BEGIN} ... {END} section to bind")
    return header[start:end]


ffibuilder = FFI()
ffibuilder.cdef(declarations(HEADER.read_text()))
ffibuilder.set_source(
    "stratumkit._sha256d",
    '#include "sha256d.h"',
    # setuptools wants a path relative to the project root, where pip runs this script
    sources=[os.path.relpath(HERE / "sha256d.c")],
    include_dirs=[str(HERE)],
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
