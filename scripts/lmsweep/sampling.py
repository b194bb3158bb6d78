"""Sampling that gives each test example its own random stream, whatever batch it lands in.

transformers samples the next token of a whole batch with one draw of the
global torch generator (`torch.multinomial` in `_sample`), so a sampled answer
depends on which other prompts share its batch: a batch size found to fit the
GPU, a batch halved on out-of-memory, or prompts sorted by length would each
change the answers. The library has no per-row generator, but it takes extra
logits processors. `PerExampleSampler` is one: it applies the library's own
warpers (temperature, top-k, top-p, in the library's order), adds Gumbel noise
from the example's own random stream, and keeps only the argmax token
(Gumbel-max: argmax(logits + G) is a draw from softmax(logits)). The library's
multinomial then has one token left to pick. Each example's stream is keyed by
(study seed, replicate, example id) and the step.

The stream is counter-based: the uniform for (example, step, token) is a hash
of the three (murmur3's 32-bit finalizer, in integer tensor operations), so a
whole batch's noise is a few vectorized operations, and it is the same on a
CPU and a GPU. Each uniform lies strictly inside (0, 1) (to_uniform), so the
noise is finite, from -2.81 to 16.64: a token the warpers removed (-inf) is
never drawn, and one whose warped logit lies more than 19.4 below the best
one's (a probability below 4e-9 of the best's) is never drawn either. One torch.Generator per row, the obvious alternative, made
generation 2.6 times slower at 200 rows on an H200 (one launch per row and
step; BENCHMARKS.md).

Beam sampling (num_beams > 1 with do_sample) draws several tokens per beam
from the joint beam distribution, which a one-token processor cannot do:
there the library's own sampling runs, seeded per batch, and its answers
depend on the batch (recorded as `sampling: per-batch`).
"""

# Warpers transformers may add after the processors, in its order (generation/utils.py,
# _get_logits_processor). Only the first three are lmsweep decoding parameters; with any
# other one set (a model's own defaults, opted in) the library's sampling runs instead.
OTHER_WARPERS = {"top_h": None, "min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}


def example_seed(seed: int, replicate: int, example_id: int) -> int:
    """A well-mixed 63-bit seed for one example's stream (numpy's SeedSequence does the mixing)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, replicate, example_id]).generate_state(1, dtype=np.uint64)[0] >> 1)


def per_example_possible(generation_config) -> bool:
    """Whether PerExampleSampler reproduces the library's sampling for this config."""
    if not generation_config.do_sample or (generation_config.num_beams or 1) > 1:
        return False
    return all(getattr(generation_config, k, v) in (v, None) for k, v in OTHER_WARPERS.items())


def _warpers(generation_config):
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = []
    if generation_config.temperature is not None and generation_config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(generation_config.temperature))
    if generation_config.top_k:
        warpers.append(TopKLogitsWarper(top_k=generation_config.top_k, min_tokens_to_keep=1))
    if generation_config.top_p is not None and generation_config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=generation_config.top_p, min_tokens_to_keep=1))
    return warpers


_M32 = 0xFFFFFFFF


def mix32(x):
    """murmur3's fmix32 on an int64 tensor of 32-bit values (the products wrap; their low 32 bits are kept)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


# Bits of a 32-bit hash kept for a uniform. float32 holds k + 0.5 exactly for every k below 2**23 (24
# significant bits), so (k + 0.5) / 2**23 lies in [2**-24, 1 - 2**-24]: never 0 nor 1, whatever the hash.
# With 24 bits, (2**24 - 1) + 0.5 rounded to 2**24 and u was 1.0 in vocab / 2**24 of the steps: an
# infinite Gumbel draw that won whatever its token's probability, 0.19% of Llama-2's steps (issue 17).
UNIFORM_BITS = 23


def to_uniform(hashes):
    """U(0, 1) float32 from 32-bit hash values (int64 tensor): strictly inside (0, 1) for every input."""
    import torch

    bits = hashes >> (32 - UNIFORM_BITS)
    return (bits.to(torch.float32) + 0.5) * (1.0 / (1 << UNIFORM_BITS))


def gumbel(u):
    """Standard Gumbel noise -log(-log(u)); finite for every u to_uniform gives (from -2.81 to 16.64)."""
    import torch

    return -torch.log(-torch.log(u))


def uniforms(keys, step: int, vocab: int, device):
    """U(0, 1) float32 of shape (rows, vocab): one value per (row key, step, token), 23 bits each."""
    import torch

    row = mix32(keys ^ mix32(torch.full_like(keys, (step * 0x9E3779B9) & _M32)))
    token = mix32(torch.arange(vocab, dtype=torch.int64, device=device))
    return to_uniform(mix32(row[:, None] ^ token[None, :]))


class PerExampleSampler:
    """A logits processor: the next token of each row, drawn from that row's own random stream."""

    def __init__(self, generation_config):
        self.warpers = _warpers(generation_config)
        self.keys, self.step = None, 0

    def start(self, seeds, device) -> None:
        """One stream per row of the next batch, in row order; steps count from 0."""
        import torch

        seeds = torch.tensor(seeds, dtype=torch.int64, device=device)
        self.keys = mix32((seeds & _M32) ^ mix32((seeds >> 32) & _M32))
        self.step = 0

    def __call__(self, input_ids, scores):
        import torch

        if self.keys is None or len(self.keys) != scores.shape[0]:
            have = 0 if self.keys is None else len(self.keys)
            raise RuntimeError(f"PerExampleSampler has {have} streams for {scores.shape[0]} rows")
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        noise = gumbel(uniforms(self.keys, self.step, scores.shape[1], scores.device))
        self.step += 1
        # A token the warpers removed has -inf, and -inf + finite noise stays -inf: it is never chosen.
        choice = (scores.float() + noise).argmax(dim=-1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, choice, 0.0)
