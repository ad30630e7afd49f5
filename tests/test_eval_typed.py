"""The typed evaluation results (loravet.results.Evaluation): the adapter-controlled strings in them are as
inert in every format as the adapters' own, and the object still reads as a mapping of its JSON."""

from __future__ import annotations

import json
import re

from loravet.reports.render import render
from loravet.reports.sanitize import terminal_report
from loravet.results import Evaluation, Report, ScoreBlock, Submission, Timing

ERASE = "zz\x1b[8A\x1b[J"  # cursor up 8 lines, erase to the end of the screen
OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # write "rm -rf ~" to the clipboard
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # a hidden hyperlink
TITLE = "\x1b]0;PWNED-TITLE\x07"  # window title
C1 = "\x9b2J\x9d0;C1-TITLE\x9c"  # 8-bit CSI erase screen, 8-bit OSC title
HTML = (
    "<img src=\"http://127.0.0.1:1/x.png\" onerror=\"document.title='PWNED'\"><script>document.title='PWNED'</script>"
)
CONTROL = "[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"


def test_an_evaluation_with_hostile_names_and_notes_renders_inert() -> None:
    """The evaluation's adapter-controlled strings (adapter names, why one was not loaded, notes, answer-token
    texts, file names) are cleaned like the adapters' in every format; the JSON keeps them intact. (The prompt is
    the user's own template, shown as written.)"""
    bad = "fold" + ERASE + OSC8 + TITLE + C1 + HTML
    ev = Evaluation(
        metric="auc",
        rows=4,
        prompt_version="custom",
        prompt="rate {body}",
        task="binary",
        scores={"base": ScoreBlock(0.5, None, ci95=[0.2, 0.8]), bad: ScoreBlock(0.75, None, ci95=None)},
        skipped={bad + "2": "PEFT raised " + ERASE},
        notes=["a note " + OSC52 + HTML],
        answer_tokens={"yes": [1], "yes_strings": [TITLE], "no": [2], "no_strings": ["No"]},
        max_length=64,
        longest_prompt_tokens=9,
        degenerate={bad: "constant " + C1},
        timing=Timing(1.0, 2.0, 4.0),
        device="cpu",
        dtype="float32",
        parameters_in_memory=1000,
        agreement={"base": {bad: 0.5}},
        histograms={bad: [("0.0-0.1", 4)]},
        predictions_file="p.csv",
        submission=Submission("s.csv", bad),
    )
    report = Report("eval", [], None, ev)
    clean = json.dumps(terminal_report(report).to_json(), ensure_ascii=False)  # what the terminal formats print
    assert not re.search(CONTROL, clean)
    for fmt in ("table", "md"):
        assert not re.search(CONTROL, render(report, fmt)), fmt
    html = render(report, "html")
    assert "<script>document.title" not in html and '<img src="http://127.0.0.1' not in html
    assert "\x1b" not in html and "0.7500" in render(report, "table")
    assert json.loads(render(report, "json"))["evaluation"]["submission"]["from"] == bad  # intact
    assert report.evaluation is not None and report.evaluation["notes"] == ev.notes  # read as its JSON
