"""The C kernels of the candidates: the mixtures (stream_rec/core/_mixture.c, read by
stream_rec/core/mixture.py) and the features' glue (stream_rec/core/_features.c, read by
stream_rec/core/features.py); everything else about the package is in pyproject.toml.

A C compiler is needed to install stream-rec, as it is for llama-cpp-python.
"""

from setuptools import Extension, setup

# IEEE arithmetic in the written order: the sums are the same bits as numpy's
_STRICT = ["-O2", "-fno-fast-math"]

setup(ext_modules=[
    Extension("stream_rec.core._mixture", ["stream_rec/core/_mixture.c"],
              extra_compile_args=_STRICT),
    Extension("stream_rec.core._features", ["stream_rec/core/_features.c"],
              extra_compile_args=_STRICT),
])
