"""Only the C extension is declared here; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# optional: without a C compiler the install still succeeds and the pure-Python scanner runs (slower; the
# proxy logs which one it uses at start-up). `make test` fails in that case: the tests want both.
setup(ext_modules=[Extension("tenantry.protocol._native", ["protocol/_native.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
