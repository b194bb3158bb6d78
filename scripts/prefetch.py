"""Download every Hub model and dataset the study needs into the local cache (rule prefetch).

    python scripts/prefetch.py --config config.yaml --list      # what is needed, what is cached
    python scripts/prefetch.py --config config.yaml --hf-home /shared/hf-cache

Run it where there is internet (a cluster's login node), before jobs that run
offline. What the cache already holds is not downloaded again.
"""

import argparse
import os


def run(items: list, hf_home: str | None = None, list_only: bool = False, log_path: str | None = None) -> list:
    from lmsweep import prefetch

    # The one step that must reach the Hub, even where the shell says offline.
    for name in prefetch.OFFLINE_ENV:
        os.environ.pop(name, None)
    log_file = open(log_path, "a", buffering=1) if log_path else None

    def log(line: str) -> None:
        # To the terminal too: downloads take long, and their progress bars go to stderr.
        print(line, flush=True)
        if log_file:
            log_file.write(line + "\n")

    items = [prefetch.Item(**item) for item in items]
    hub_cache, datasets_cache = prefetch.cache_dirs(hf_home)
    log(f"Hugging Face cache: {hub_cache} (models), {datasets_cache} (datasets)")
    if not items:
        log("nothing to fetch: every model and the dataset are local or built by the workflow")
        return []
    if list_only:
        lacking = set(prefetch.missing(items, hub_cache, datasets_cache))
        for item in items:
            log(f"{'missing' if item in lacking else 'cached '}  {item.describe()}")
        return []
    try:
        records = prefetch.prefetch(items, hub_cache, datasets_cache, log=log)
    except Exception as err:
        log(f"prefetch failed: {type(err).__name__}: {err}")
        raise
    log(f"{sum(r['action'] == 'fetched' for r in records)} fetched, {sum(r['action'] == 'cached' for r in records)} "
        "already cached")
    return records


def main(argv=None) -> None:
    from dataclasses import asdict

    import yaml

    from lmsweep.prefetch import needs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the study's config.yaml")
    parser.add_argument("--hf-home", default=None, help="cache folder; default: the config's hf_home, else HF_HOME")
    parser.add_argument("--list", action="store_true", help="only say what is needed and what is cached")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        config = yaml.safe_load(fh)
    items = [asdict(item) for item in needs(config)]
    run(items, args.hf_home or config.get("hf_home"), list_only=args.list)


if "snakemake" in globals():
    # No warm start: prefetch runs once, and downloads dwarf the imports.
    os.makedirs(os.path.dirname(snakemake.log[0]), exist_ok=True)
    open(snakemake.log[0], "w").close()
    run(snakemake.params.needed, snakemake.params.hf_home, log_path=snakemake.log[0])
elif __name__ == "__main__":
    main()
