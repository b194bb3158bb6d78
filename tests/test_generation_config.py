"""Every model decodes under the study's settings, not its folder's own defaults; what ran is recorded."""

import copy

import pytest

from lmsweep.generation import build_generation_config, effective_settings, generate
from lmsweep.models import load_for_inference, load_tokenizer
from lmsweep.prompts import Prompter

SAMPLING = {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def plain(tiny_llama):
    return load_for_inference(str(tiny_llama), None, "cpu"), load_tokenizer(str(tiny_llama), padding_side="left")


@pytest.fixture(scope="module")
def llama2(llama2_layout):
    return (load_for_inference(str(llama2_layout), None, "cpu"),
            load_tokenizer(str(llama2_layout), padding_side="left"))


def test_the_folder_sets_decoding_defaults_and_no_pad_token(llama2):
    model, tokenizer = llama2
    assert model.generation_config.top_p == 0.9 and model.generation_config.temperature == 0.6
    assert tokenizer.pad_token == tokenizer.eos_token  # load_tokenizer's fallback for a tokenizer without one


def test_what_a_folder_asks_generate_to_return_is_no_decoding_difference(plain):
    """transformers 5 saves output_attentions/output_hidden_states False in every generation_config.json it
    writes; those change what generate() returns, never a token, so they are not reported as overridden."""
    model, tokenizer = plain
    own = copy.deepcopy(model.generation_config)  # the fixture is shared
    own.output_attentions, own.output_hidden_states, own.top_p = False, False, 0.5
    _, overridden = build_generation_config(SAMPLING, own, tokenizer)
    assert overridden == {"top_p": (0.5, 1.0)}


def test_library_defaults_then_the_study_not_the_model_folder(llama2):
    model, tokenizer = llama2
    config, overridden = build_generation_config(SAMPLING, model.generation_config, tokenizer)
    assert config.top_p == 1.0  # transformers' default, not the folder's 0.9
    assert config.temperature == 0.8  # the study's, not the folder's 0.6
    assert config.top_k == 50 and config.do_sample is True and config.max_new_tokens == 8
    assert overridden == {"top_p": (0.9, 1.0), "temperature": (0.6, 0.8), "max_length": (4096, None)}


def test_the_models_token_ids_are_kept(llama2):
    model, tokenizer = llama2
    config, _ = build_generation_config(SAMPLING, model.generation_config, tokenizer)
    assert config.pad_token_id == 0  # the folder's, as Llama-2's generation_config.json has it
    assert config.eos_token_id == tokenizer.eos_token_id and config.bos_token_id == tokenizer.bos_token_id


def test_several_eos_ids_are_kept(llama2):
    """A model may stop on several ids (Llama-3's generation config lists three)."""
    from transformers import GenerationConfig

    model, tokenizer = llama2
    own = GenerationConfig(eos_token_id=[tokenizer.eos_token_id, 7], bos_token_id=1, top_p=0.9)
    config, _ = build_generation_config(SAMPLING, own, tokenizer)
    assert config.eos_token_id == [tokenizer.eos_token_id, 7]


def test_opting_in_takes_the_folders_defaults_for_unset_fields(llama2):
    model, tokenizer = llama2
    config, overridden = build_generation_config(SAMPLING, model.generation_config, tokenizer, model_defaults=True)
    assert config.top_p == 0.9  # the study does not set top_p: the model's
    assert config.temperature == 0.8  # the study does: the study's
    assert overridden == {"temperature": (0.6, 0.8), "max_length": (4096, None)}


def test_greedy_configs_keep_sampling_fields_at_the_library_defaults(llama2):
    model, tokenizer = llama2
    config, _ = build_generation_config({**SAMPLING, "do_sample": False, "num_beams": 4}, model.generation_config,
                                        tokenizer)
    assert (config.temperature, config.top_k, config.top_p) == (1.0, 50, 1.0)
    assert config.num_beams == 4 and config.do_sample is False


def test_the_recorded_settings_are_what_generate_runs_with(llama2, demo_records):
    """The config generate() prepares from ours (its private merge with the model's own) equals ours."""
    from lmsweep.generation import set_generation_config

    model, tokenizer = llama2
    config, _ = build_generation_config(SAMPLING, model.generation_config, tokenizer)
    set_generation_config(model, config)
    prepared, _ = model._prepare_generation_config(config)
    recorded = effective_settings(config)
    # generate() fills max_length with the library's 20, then replaces it by prompt + max_new_tokens.
    assert {k: v for k, v in effective_settings(prepared).items() if k != "max_length"} == recorded
    assert recorded["top_p"] == 1.0 and recorded["temperature"] == 0.8 and recorded["max_new_tokens"] == 8


def test_two_folders_of_one_model_decode_alike_whatever_their_defaults(plain, llama2, demo_records):
    """The same weights with and without Llama-2's generation_config.json: the same answers."""
    records = demo_records[:10]
    outputs = []
    for model, tokenizer in (plain, llama2):
        config, _ = build_generation_config(SAMPLING, model.generation_config, tokenizer)
        outputs.append([r["prediction"] for r in generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, 5, seed=3,
                                                          generation_config=config)])
    assert outputs[0] == outputs[1]


def test_with_the_folders_defaults_the_answers_differ(llama2_layout, demo_records):
    model = load_for_inference(str(llama2_layout), None, "cpu")
    tokenizer = load_tokenizer(str(llama2_layout), padding_side="left")
    records = demo_records[:10]
    ours, _ = build_generation_config(SAMPLING, model.generation_config, tokenizer)
    theirs, _ = build_generation_config(SAMPLING, model.generation_config, tokenizer, model_defaults=True)
    a = [r["prediction"] for r in generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, 5, seed=3, generation_config=ours)]
    b = [r["prediction"] for r in generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, 5, seed=3, generation_config=theirs)]
    assert a != b  # top_p 0.9 cuts the tail of a near-uniform model's distribution
