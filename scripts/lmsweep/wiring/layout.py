"""Where every rule writes, by the names its step's Paths use: the one copy of the results' layout."""

VARIANTS = ("finetuned", "base")

# What every rule writes, by the names its step's Paths use.
SPLIT = {"train": "results/prepare_data/train.jsonl", "test": "results/prepare_data/test.jsonl",
         "manifest": "results/prepare_data/manifest.json"}
BUILT = "results/build_tiny_model/{model}"
CONVERTED = "results/convert_gguf/{model}"
ADAPTER = "results/finetune/{model}/adapter"
LOSS = "results/finetune/{model}/train_log.csv"
CHECKPOINTS = "results/finetune/{model}/checkpoints"
MERGED = "results/merge_adapter/{model}"
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
