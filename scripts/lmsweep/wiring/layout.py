"""Where every rule writes, by the names its step's Paths use: the one copy of the results' layout."""

VARIANTS = ("finetuned", "base")  # and one more per adaptation config (lmsweep.adaptation), named after it

# What every rule writes, by the names its step's Paths use.
SPLIT = {"train": "results/prepare_data/train.jsonl", "test": "results/prepare_data/test.jsonl",
         "manifest": "results/prepare_data/manifest.json"}
BUILT = "results/build_tiny_model/{model}"
CONVERTED = "results/convert_gguf/{model}"
# {adaptation}: '' for the baseline adapter, '@<name>' for a swept one (lmsweep.adaptation.folder_part), so that a
# study without an adaptation sweep keeps its paths: results/finetune/<model>/adapter, .../<model>@r_4/adapter.
TRAINED = "{model}{adaptation}"
ADAPTER = f"results/finetune/{TRAINED}/adapter"
LOSS = f"results/finetune/{TRAINED}/train_log.csv"
CHECKPOINTS = f"results/finetune/{TRAINED}/checkpoints"
MERGED = f"results/merge_adapter/{TRAINED}"
RUN = "{model}/{variant}/{decoding}/rep{rep}"
PREDICTIONS = f"results/generate/{RUN}.jsonl"
GENERATION_INFO = f"results/generate/{RUN}.info.json"
SCORE = f"results/score/{RUN}.json"
SCORE_EXAMPLES = f"results/score/{RUN}.per_example.csv"
PERPLEXITY = "results/perplexity/{model}/{variant}.json"
PERPLEXITY_EXAMPLES = "results/perplexity/{model}/{variant}.per_example.csv"
CHECKED = "results/check_scores/checked.json"
SCORES = "results/scores.csv"
COMPARISONS = "results/comparisons.csv"
REPORT = "results/report"
