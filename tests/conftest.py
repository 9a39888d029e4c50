"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _load_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One load cache for the whole suite, in a fresh temporary directory (never the user's):
    tests load the same models many times, so most hostile-bundle tests run against a warm
    cache, as a server's loads would (tests/test_load_cache.py tests the cache itself)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WRC_CACHE_DIR", str(tmp_path_factory.mktemp("wrc-cache")))
    yield
    mp.undo()
