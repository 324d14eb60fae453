"""The C kernel of the candidate mixtures (stream_rec/core/_mixture.c, read by
stream_rec/core/mixture.py); everything else about the package is in pyproject.toml.

A C compiler is needed to install stream-rec, as it is for llama-cpp-python.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "stream_rec.core._mixture", ["stream_rec/core/_mixture.c"],
    # IEEE arithmetic in the written order: the sums are the same bits as numpy's
    extra_compile_args=["-O2", "-fno-fast-math"])])
