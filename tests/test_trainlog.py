"""What a training run records (lmsweep.trainlog): the validation records it holds out of the training split,
its loss log with the validation loss, and the validation summary in training_info.json."""

import pandas as pd
import pytest

from lmsweep.trainlog import TrainingSetupError, hold_out, validation_summary, write_loss_log


def records(n):
    return [{"instruction": f"task {i}", "output": str(i)} for i in range(n)]


def test_the_held_out_records_are_a_seeded_slice_of_the_training_split_and_train_no_more():
    data = records(100)
    train, held = hold_out(data, 12, seed=42)
    assert len(held) == 12 and len(train) == 88
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in held}
    assert sorted(train + held, key=lambda r: int(r["output"])) == data
    # the rest train in their order; the same seed holds out the same records (every adapter of a study)
    assert [int(r["output"]) for r in train] == sorted(int(r["output"]) for r in train)
    assert hold_out(data, 12, seed=42) == (train, held)
    assert hold_out(data, 12, seed=7)[1] != held
    # spread over the split, not its head or tail
    assert 0 < min(int(r["output"]) for r in held) and max(int(r["output"]) for r in held) < 99


@pytest.mark.parametrize("size", [0, 1, 99])
def test_any_size_below_the_split_holds_out_that_many(size):
    train, held = hold_out(records(100), size, seed=1)
    assert (len(train), len(held)) == (100 - size, size)


@pytest.mark.parametrize("size", [100, 101])
def test_a_validation_size_that_leaves_nothing_to_train_is_refused_by_its_key(size):
    with pytest.raises(TrainingSetupError, match=r"training.validation_size \d+ leaves no training record of the 100"):
        hold_out(records(100), size, seed=1, model_name="m")


HISTORY = [
    {"step": 5, "epoch": 0.5, "loss": 3.0, "learning_rate": 1e-3},
    {"step": 5, "epoch": 0.5, "eval_loss": 2.9, "eval_runtime": 0.1},
    {"step": 10, "epoch": 1.0, "loss": 2.0, "learning_rate": 5e-4},
    {"step": 10, "epoch": 1.0, "eval_loss": 2.5},
    {"step": 12, "epoch": 1.2, "loss": 1.5, "learning_rate": 1e-4},
    {"step": 12, "train_runtime": 3.0},
    {"step": 12, "eval_loss": 2.7},
]


def test_the_loss_log_holds_the_training_and_validation_loss_of_each_logged_step(tmp_path):
    write_loss_log(HISTORY, tmp_path / "log.csv")
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.columns) == ["step", "epoch", "loss", "learning_rate", "eval_loss"]
    assert log.step.tolist() == [5, 10, 12]
    assert log.loss.tolist() == [3.0, 2.0, 1.5] and log.eval_loss.tolist() == [2.9, 2.5, 2.7]
    assert validation_summary(HISTORY, 48) == {"records": 48, "evaluations": 3, "last_loss": 2.7, "best_loss": 2.5,
                                               "best_step": 10}


def test_without_validation_the_column_is_empty_and_the_summary_says_none(tmp_path):
    train_only = [e for e in HISTORY if "eval_loss" not in e]
    write_loss_log(train_only, tmp_path / "log.csv")
    log = pd.read_csv(tmp_path / "log.csv")
    assert log.loss.tolist() == [3.0, 2.0, 1.5] and log.eval_loss.isna().all()
    assert validation_summary(train_only, 0) == {"records": 0}
