"""A small instruction dataset with checkable answers, written by the project itself.

The demo cannot download `tatsu-lab/alpaca`, so it trains on tasks whose
answers follow from the prompt (arithmetic, word order, a fixed fact table):
a model that learned them scores visibly higher than one that did not.
"""

import random

WORDS = (
    "apple river stone cloud tiger lemon piano orbit candle forest "
    "garden silver rocket pepper window marble falcon meadow copper violet"
).split()
CAPITALS = {
    "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago",
    "Norway": "Oslo", "Poland": "Warsaw", "Greece": "Athens", "Canada": "Ottawa",
}
NUMBER_WORDS = "zero one two three four five six seven eight nine".split()


def _task(rng: random.Random) -> dict:
    kind = rng.randrange(6)
    if kind == 0:
        a, b = rng.randrange(50), rng.randrange(50)
        return {"instruction": "Add the two numbers.", "input": f"{a} and {b}", "output": str(a + b)}
    words = rng.sample(WORDS, rng.randrange(3, 6))
    if kind == 1:
        return {"instruction": "Reverse the order of the words.", "input": " ".join(words),
                "output": " ".join(reversed(words))}
    if kind == 2:
        return {"instruction": "Sort the words in alphabetical order.", "input": " ".join(words),
                "output": " ".join(sorted(words))}
    if kind == 3:
        return {"instruction": "How many words are in the input? Answer in words.",
                "input": " ".join(words), "output": f"There are {NUMBER_WORDS[len(words)]} words."}
    if kind == 4:
        word = rng.choice(WORDS)
        return {"instruction": "Write the word in capital letters.", "input": word, "output": word.upper()}
    country = rng.choice(sorted(CAPITALS))
    return {"instruction": f"What is the capital of {country}?", "input": "",
            "output": f"The capital of {country} is {CAPITALS[country]}."}


def make_tasks(n: int, seed: int) -> list:
    """`n` Alpaca-format records, drawn with `seed`; duplicates are left in, as in real data."""
    rng = random.Random(seed)
    return [_task(rng) for _ in range(n)]


SYSTEM = "Answer with the result only."


def make_conversations(n: int, seed: int) -> list:
    """`n` records in messages form (the chat demo's data, demo_chat/tasks.jsonl): each task as a user turn
    and its answer as the assistant's; about a third open with a system turn, about a third follow an
    earlier exchange (another task and its answer), so prompts of one, two and four turns occur."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        task, kind = _task(rng), rng.randrange(3)
        turns = [{"role": "system", "content": SYSTEM}] if kind == 1 else []
        if kind == 2:
            earlier = _task(rng)
            turns += [{"role": "user", "content": _user(earlier)}, {"role": "assistant", "content": earlier["output"]}]
        turns += [{"role": "user", "content": _user(task)}, {"role": "assistant", "content": task["output"]}]
        out.append({"messages": turns})
    return out


def _user(task: dict) -> str:
    return f"{task['instruction']}\n\n{task['input']}" if task["input"].strip() else task["instruction"]


if __name__ == "__main__":  # python -m lmsweep.demo_data N SEED > file.jsonl: the chat demo's data
    import json
    import sys

    for record in make_conversations(int(sys.argv[1]), int(sys.argv[2])):
        print(json.dumps(record))
