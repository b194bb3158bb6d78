"""What makes the study's numbers doubtful, said once, at the top of the report."""

from __future__ import annotations

def study_warnings(record: dict, scores, comparisons, infos) -> list:
    """Everything that makes a number of this study doubtful, said once, at the top of the report.

    The same things are warned about in the jobs' logs; here they stand beside the numbers they concern.
    """
    from lmsweep.data import study_warnings as split_warnings

    out = [w[0].upper() + w[1:] + "." for w in split_warnings(record)]
    cut = [i for i in infos if i.prompts_cut]
    if cut:
        runs = ", ".join(sorted({f"{i.model}/{i.variant}/{i.decoding}" for i in cut}))
        most = max(i.prompts_cut for i in cut)
        out.append(f"Prompts longer than the model's context minus max_new_tokens were cut to fit (up to {most} of "
                   f"{cut[0].n_examples} prompts in a run; prompt_tokens_cut in the predictions files): {runs}. "
                   "A cut prompt may lose what the answer depends on; lower max_new_tokens to keep them whole.")
    hit = scores[(scores.metric == "hit_max_new_tokens") & (scores.value > 0.1)]
    if len(hit):
        worst = hit.sort_values("value", ascending=False).iloc[0]
        out.append(f"{len(hit)} run(s) stopped more than 10% of their answers at max_new_tokens, before their end "
                   f"(worst: {worst.model}/{worst.variant}/{worst.decoding}, {worst.value:.0%}): their metrics score "
                   "cut answers; raise max_new_tokens if answers should be longer.")
    for model, m in sorted((record.get("models") or {}).items()):
        lengths = m.get("lengths") or {}
        if lengths.get("truncated"):
            out.append(f"{model}: training.max_length {lengths['max_length']} cut {lengths['truncated']} of "
                       f"{lengths['examples']} training examples (they lose their end and EOS).")
    for run, p in sorted((record.get("perplexity") or {}).items()):
        if p.get("answers_cut"):
            out.append(f"{run}: {p['answers_cut']} reference answer(s) are longer than the model's context: their "
                       f"perplexity scores only what fits ({p['bytes_cut']:,} bytes left out of bits per byte and "
                       "word perplexity, which count only the scored text).")
    if "settled" in comparisons:
        open_tests = comparisons[comparisons.in_holm_family.astype(bool) & ~comparisons.settled.astype(bool)]
        if len(open_tests):
            out.append(f"{len(open_tests)} Monte-Carlo test(s) could not be decided against Holm's level within "
                       "statistics.max_resamples and count as not significant (settled: false in comparisons.csv); "
                       "raise statistics.max_resamples.")
    return out
