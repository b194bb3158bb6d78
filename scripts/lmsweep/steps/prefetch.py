"""Rule prefetch: download every Hub model and dataset the study needs into the local cache.

Run it where there is internet (a cluster's login node), before jobs that
run offline: `snakemake --cores 1 prefetch`. What the cache already holds is
not downloaded again. By hand, `python scripts/prefetch.py --config
config.yaml --list-only` says what is needed and what is cached.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)
WARM = False  # prefetch runs once, and downloads dwarf the imports
LOG_TO_TERMINAL = True  # downloads take long: their progress shows where the run was started
CLI_FLAGS = ("list_only",)  # by hand: say what is needed and what is cached, fetch nothing


@dataclass(frozen=True)
class Settings:
    needed: list  # lmsweep.hubcache.Item of every Hub model and dataset, as mappings
    hf_home: str | None
    list_only: bool  # only say what is needed and what is cached


@dataclass(frozen=True)
class Paths:
    pass


def run(settings: Settings, paths: Paths, threads: int = 1) -> list:
    from lmsweep import hubcache

    # The one step that must reach the Hub, even where the shell says offline.
    for name in hubcache.OFFLINE_ENV:
        os.environ.pop(name, None)
    items = [hubcache.Item(**item) for item in settings.needed]
    hub_cache, datasets_cache = hubcache.cache_dirs(settings.hf_home)
    log.info(f"Hugging Face cache: {hub_cache} (models), {datasets_cache} (datasets)")
    if not items:
        log.info("nothing to fetch: every model and the dataset are local or built by the workflow")
        return []
    if settings.list_only:
        lacking = set(hubcache.missing(items, hub_cache, datasets_cache))
        for item in items:
            log.info(f"{'missing' if item in lacking else 'cached '}  {item.describe()}")
        return []
    try:
        records = hubcache.fetch_missing(items, hub_cache, datasets_cache)
    except Exception as err:
        log.error(f"prefetch failed: {type(err).__name__}: {err}")
        raise
    log.info(f"{sum(r['action'] == 'fetched' for r in records)} fetched, "
             f"{sum(r['action'] == 'cached' for r in records)} already cached")
    return records
