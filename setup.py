"""The one build step pyproject.toml does not state: aqcore's optional C kernel
(aqcore/_native.c). Without a C compiler aqcore installs without it and aqcore.sampling uses
numpy instead (``aq plugins`` says which)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("aqcore._native", ["aqcore/_native.c"], optional=True, extra_compile_args=["-O3"]),
    ]
)
