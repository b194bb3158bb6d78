"""Rule check_scores: every score and perplexity file the tables are made from, checked and recorded by content
before aggregate and compare replace scores.csv and comparisons.csv."""

import shutil

import pytest

from lmsweep.checks import IntermediateFileError
from lmsweep.io import sha256_file
from lmsweep.records import CheckedScores, per_example_path
from lmsweep.steps import check_scores as step


def paths_of(folder, checked):
    summaries = sorted(map(str, folder.glob("score/*/*/*/rep*.json")))
    perplexities = sorted(map(str, folder.glob("perplexity/*/*.json")))
    return step.Paths(test=str(folder / "test.jsonl"), scores=summaries,
                      per_example=[str(per_example_path(p)) for p in summaries], perplexities=perplexities,
                      perplexity_examples=[str(per_example_path(p)) for p in perplexities], checked=str(checked))


def test_every_file_is_checked_and_recorded_by_its_content(mini_study, tmp_path):
    paths = paths_of(mini_study["folder"], tmp_path / "checked.json")
    checked = step.run(step.Settings(bertscore_rescaled=False), paths)
    assert CheckedScores.load(paths.checked) == checked
    # 2 models x (3 fine-tuned configs + the base baseline); the sampled ones with 2 replicates
    assert (checked.runs, checked.replicates, checked.perplexities) == (8, 14, 4)
    files = [paths.test, *paths.scores, *paths.per_example, *paths.perplexities, *paths.perplexity_examples]
    assert checked.sha256 == {path: sha256_file(path) for path in files}


def test_a_damaged_file_stops_the_step_before_anything_is_written(mini_study, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(mini_study["folder"], folder)
    damaged = folder / "perplexity" / "m2" / "finetuned.per_example.csv"
    damaged.write_text(damaged.read_text().replace("\n", "\n-", 3))  # negative token counts
    paths = paths_of(folder, tmp_path / "checked.json")
    with pytest.raises(IntermediateFileError, match=r"finetuned\.per_example\.csv.*--forcerun"):
        step.run(step.Settings(bertscore_rescaled=False), paths)
    assert not (tmp_path / "checked.json").exists()
