"""Build the optional C kernels; everything else is in pyproject.toml.

``optional=True``: on a machine without a C compiler the build skips the
extension with a warning and the package runs its pure-Python kernels, which
give the same answers (``resilience_django.limiting.algorithms``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "resilience_django.limiting._speedups",
            ["resilience_django/limiting/_speedups.c"],
            # Bit-identical floats with the Python kernels: no fused multiply-add.
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
