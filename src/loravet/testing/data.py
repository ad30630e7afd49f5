"""A small labelled dataset in the Jigsaw ACRC schema, generated here (the demo and the tests need nothing
from outside): the two public rule texts of the competition's train file, four rules on the hidden topics in
our own words, and comments from a template generator with known labels."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

__all__ = ["ACRC_COLUMNS", "ACRC_RULE_TEXTS", "generate_rows", "write_csv"]

ACRC_COLUMNS = [
    "row_id",
    "body",
    "rule",
    "subreddit",
    "positive_example_1",
    "positive_example_2",
    "negative_example_1",
    "negative_example_2",
    "rule_violation",
]

ACRC_RULE_TEXTS: dict[str, str] = {
    # topic -> the rule's text as a subreddit states it (not loravet's finding catalog, findings.CATALOG)
    "advertising": "No Advertising: Spam, referral links, unsolicited advertising, and promotional content are "
    "not allowed.",
    "legal": "No legal advice: Do not offer or request legal advice.",
    "financial": "No financial advice: Do not tell people what to buy, sell or invest in.",
    "medical": "No medical advice: Do not diagnose conditions or recommend treatments or doses.",
    "illegal": "No promotion of illegal activity: Do not encourage or explain how to break the law.",
    "spoilers": "No spoilers: Do not reveal plot details of recent shows, films or games without a tag.",
}

_VIOLATING: dict[str, list[str]] = {
    "advertising": [
        "Check out my store {url} for {pct}% off everything today!",
        "Use my referral code {code} to get free credits at {url}",
        "Best cheap {thing} deals, click here: {url}",
        "I sell {thing} at wholesale prices, message me or visit {url}",
    ],
    "legal": [
        "You should sue your landlord for breach of contract, file in small claims by {day}.",
        "Legally you can refuse to testify, just cite the fifth and don't sign anything.",
        "Tell the judge the {thing} was never yours, that defence usually works.",
        "Don't pay the ticket, contest it and argue the sign was not visible.",
    ],
    "financial": [
        "Put all your savings into {ticker} now, it will double by {day}.",
        "Sell your {thing} and buy {ticker} options, guaranteed returns.",
        "Take a loan and invest it in {ticker}, you can't lose.",
        "Move your pension into crypto this week, trust me.",
    ],
    "medical": [
        "Take {n} pills of ibuprofen every hour, that will fix the infection.",
        "You clearly have {illness}, stop your prescription and try fasting.",
        "Double your insulin dose before {thing}, it helps.",
        "That rash is {illness}, just apply bleach to it.",
    ],
    "illegal": [
        "Here's how to pick the lock on your neighbour's {thing}: use a tension wrench.",
        "Just shoplift the {thing}, the cameras at that store don't work.",
        "You can buy fake IDs at {url}, nobody checks.",
        "Drive without insurance, police never check on {day}.",
    ],
    "spoilers": [
        "Can't believe {hero} dies in the final episode of {show}!",
        "The twist in {show} is that {hero} was the villain all along.",
        "{hero} ends up marrying the killer at the end of {show}.",
        "In the last level of {show} you find out {hero} was dead the whole time.",
    ],
}
_BENIGN: list[str] = [
    "I tried that recipe last night and it turned out great, thanks for sharing.",
    "Does anyone know when the {show} season starts? Looking forward to it.",
    "Great photo, the colours in the sky are amazing.",
    "I had the same problem with my {thing}, a restart fixed it.",
    "Welcome to the community! Read the sidebar before posting.",
    "This thread is hilarious, made my {day}.",
    "Interesting article, but I'd like to see the sources.",
    "My {thing} broke after two years, anyone have a good repair shop?",
    "Congrats on finishing the marathon, that's a huge achievement.",
    "Ask your doctor about it, they know your history best.",
    "You might want to talk to a lawyer about that, I'm not one.",
    "Nice build! What case did you use?",
]
_FILL = {
    "url": ["bit.ly/deal42", "shop-cheap.example", "promo.example/x", "getfree.example"],
    "pct": ["30", "50", "70"],
    "code": ["XJ42", "FREE10", "BONUS"],
    "thing": ["phone", "bike", "laptop", "car", "watch", "garden shed"],
    "day": ["Friday", "next month", "the weekend", "Monday"],
    "ticker": ["ACME", "ZZZ", "MOON", "TSLA"],
    "n": ["six", "ten", "four"],
    "illness": ["lupus", "diabetes", "an allergy", "the flu"],
    "hero": ["Mara", "the captain", "Jon", "the detective"],
    "show": ["Starfall", "The Harbour", "Iron Crown", "Night Shift"],
}
_SUBREDDITS = [
    "AskReddit",
    "legaladvice",
    "personalfinance",
    "AskDocs",
    "gaming",
    "television",
    "Futurology",
    "soccerstreams",
    "pics",
    "DIY",
]


def _fill(template: str, rng: random.Random) -> str:
    out = template
    for key, choices in _FILL.items():
        while "{" + key + "}" in out:
            out = out.replace("{" + key + "}", rng.choice(choices), 1)
    return out


_OPENERS = ["", "", "Honestly, ", "Ok so ", "FYI: ", "Update: ", "lol ", "PSA: ", "Serious question, "]
_CLOSERS = ["", "", " Thanks!", " Just my two cents.", " Cheers.", " Edit: typo.", " Any thoughts?", " :)"]


def generate_rows(n: int, seed: int = 0, rules: list[str] | None = None) -> list[dict[str, Any]]:
    """`n` labelled rows, balanced over rules, ~45% violations; deterministic for a seed."""
    rng = random.Random(seed)
    keys = rules or list(ACRC_RULE_TEXTS)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        key = keys[i % len(keys)]
        violation = rng.random() < 0.45
        body = (
            rng.choice(_OPENERS)
            + _fill(rng.choice(_VIOLATING[key] if violation else _BENIGN), rng)
            + rng.choice(_CLOSERS)
        )
        rows.append(
            {
                "row_id": i,
                "body": body,
                "rule": ACRC_RULE_TEXTS[key],
                "subreddit": rng.choice(_SUBREDDITS),
                "positive_example_1": _fill(rng.choice(_VIOLATING[key]), rng),
                "positive_example_2": _fill(rng.choice(_VIOLATING[key]), rng),
                "negative_example_1": _fill(rng.choice(_BENIGN), rng),
                "negative_example_2": _fill(rng.choice(_BENIGN), rng),
                "rule_violation": int(violation),
            }
        )
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path, labelled: bool = True) -> Path:
    cols = ACRC_COLUMNS if labelled else ACRC_COLUMNS[:-1]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
