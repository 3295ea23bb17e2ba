"""A tiny Django project for ``benchmarks/bench_e2e.py``: one settings module, one variant per run.

``BENCH_E2E_VARIANT`` picks the variant (see ``settings.VARIANTS``) and
``BENCH_E2E_REDIS_URL`` the throwaway Redis the distributed variants use.
"""
