"""Markdown table helpers for scripts/bench_report*.py.

A ratio judged against a goal is shown rounded to 2 decimals towards
missing it (0.849 shows as 0.84 against ≥ 0.85), so that a cell never reads
as met when it is not; a comparison whose runs had failed requests is not
judged at all.
"""
import math


def div(a, b):
    return a / b if b and b > 0 else None


def plain(ratio):
    return "–" if ratio is None else f"{ratio:.2f}"


def judged(ratio, goal, at_least, errors=0):
    """[ratio shown, goal, result] for a table row."""
    bound = f"{'≥' if at_least else '≤'} {goal:g}"
    if errors:
        return [plain(ratio), bound, f"not judged: failed requests ({errors})"]
    if ratio is None:
        return ["–", bound, "not measured"]
    shown = (math.floor if at_least else math.ceil)(round(ratio * 100, 6)) / 100
    met = ratio >= goal if at_least else ratio <= goal
    return [f"{shown:.2f}", bound, "met" if met else "missed"]


def row(*cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def header(*names):
    return [row(*names), "|" + "---|" * len(names)]


def pass_of(grad):
    return "ForwardBackward" if grad else "Forward"
