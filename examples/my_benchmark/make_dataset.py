"""Writes my_benchmark.jsonl: 150 generic multiple-choice rows about short videos, with a planted
shortcut a blind model can learn. In 80% of the rows the right option is the only one that carries
an extra detail ("... near the window"), so the longest option is the answer; in the others all
options are plain and the answer is random. Seeded: running it again gives the same bytes.

    python make_dataset.py            # rewrites my_benchmark.jsonl next to this file
"""

import json
import random
from pathlib import Path

ROWS = 150
SHORTCUT = 0.8
QUESTIONS = {
    "objects": ("What is the person holding?", ["a cup", "a phone", "a book", "an umbrella", "a bag"]),
    "colours": ("What colour is the car that drives past?", ["red", "blue", "white", "black", "green"]),
    "places": ("Where does the scene take place?", ["a kitchen", "a park", "an office", "a beach"]),
    "actions": ("What does the dog do at the end?", ["it sits", "it runs", "it sleeps", "it barks"]),
}
DETAILS = (" near the window", " at the very end of the clip", " while music plays", " in the background")


def rows(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    made = []
    for number in range(ROWS):
        category = rng.choice(sorted(QUESTIONS))
        question, pool = QUESTIONS[category]
        options = rng.sample(pool, 4)
        answer = rng.randrange(4)
        if rng.random() < SHORTCUT:
            options[answer] += rng.choice(DETAILS)
        made.append(
            {
                "id": f"q{number:03d}",
                "question": question,
                "options": options,
                "answer": "ABCD"[answer],
                "category": category,
            }
        )
    return made


def write(path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows()), encoding="utf-8")


if __name__ == "__main__":
    write(Path(__file__).with_name("my_benchmark.jsonl"))
