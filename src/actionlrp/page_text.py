"""What the pages of explanations say in numbers and words (design §6): the numbers of an
explanation, JSON-ready (`summary`, written as ``summary.json``); the sentences on how much of the
score its heatmap shows and how much was held back (`share_sentences`); a rule in one line
(`rule_text`); and the number formats the pages print (``−`` for minus, percentages with a
decimal where a share would round to 0 %). `actionlrp.pages` lays them out.
"""

from __future__ import annotations

from actionlrp.relevance import Explanation


def summary(explanation: Explanation, top_k: int = 5) -> dict:
    """The numbers of an explanation, JSON-ready (``summary.json``)."""
    return {
        "class": explanation.class_name,
        "versus": explanation.versus,
        "score": explanation.score,
        "scores": dict(explanation.scores),
        "relevance_total": explanation.relevance_total,
        "absorbed": explanation.absorbed,
        "absorbed_mass": explanation.absorbed_mass,
        "rule": explanation.rule.summary(),
        "frame_relevance": [float(v) for v in explanation.frame_relevance],
        "feature_relevance": {f: float(v) for f, v in explanation.feature_relevance.items()},
        "scale_relevance": {f"{s} px": v for s, v in explanation.scale_relevance.items()},
        "pyramid_relevance": dict(explanation.channel_relevance),
        "top_frames": [int(t) for t in explanation.top_frames(top_k)],
    }


def _number(value: float) -> str:
    return f"{value:.4g}".replace("-", "−")


def _signed(value: float) -> str:
    return f"{value:+.3g}".replace("-", "−")


def _percents(*fractions: float) -> list[str]:
    """Whole percentages, or with one decimal where one of them would round to 0 % else."""
    digits = 1 if any(0 < abs(100 * f) < 0.5 for f in fractions) else 0
    return [f"{100 * f:.{digits}f} %".replace("-", "−") for f in fractions]


def share_sentences(explanation: Explanation) -> list[str]:
    """Plain sentences (HTML) of how much of the score the heatmap shows and how much was held
    back, net (``relevance_total / score``) and counting both signs (``absorbed_mass``): by the
    rule's stabiliser for LRP, in the interactions of regions for occlusion."""
    score, total = explanation.score, explanation.relevance_total
    held = explanation.absorbed
    biggest = max([1.0] + [abs(v) for v in explanation.scores.values()])
    if getattr(explanation, "method", "lrp") == "occlusion":
        unseen = "interactions between regions, which removing one region at a time does not see,"
        was_held, holds = f"lies in {unseen}", f"{unseen} hold"
        mass_is = "lies in those interactions"
    else:
        was_held = "was held back by the rule's stabiliser (ε)"
        holds = "the rule's stabiliser (ε) held back"
        mass_is = "was held back"
    if abs(score) <= 1e-9 * biggest or max(abs(total), abs(held)) > 10 * abs(score):
        net = (
            f"The score ({_number(score)}) is too close to 0 for a percentage: the heatmap adds "
            f"up to {_number(total)}, and {holds} {_number(held)}, which is not shown anywhere "
            "in the clip."
        )
    else:
        shown, kept = _percents(total / score, held / score)
        if total / score > 1:
            net = (
                f"The heatmap accounts for {shown} of the score, {_percents(-held / score)[0]} "
                f"more than the score: {holds} more relevance against the class than for it, "
                "and that is not shown anywhere in the clip."
            )
        elif total / score < 0:
            net = (
                f"The heatmap adds up to {shown} of the score (the opposite sign): {holds} "
                f"{kept}, more than the whole score, and that is not shown anywhere in the clip."
            )
        else:
            net = (
                f"The heatmap accounts for {shown} of the score; {kept} {was_held} and is not "
                "shown anywhere in the clip."
            )
    mass = _percents(explanation.absorbed_mass)[0]
    both = (
        f"Counting relevance for and against the class alike, {mass} of it {mass_is} (the "
        "absorbed mass); held-back evidence of both signs partly cancels in the net figure."
    )
    return [net, both]


def rule_text(rule: dict) -> str:
    """One line that says what a rule (`Rule.summary`) does."""
    if rule["histogram"] == "bins":
        spread = "through the histogram bins to the vectors"
    else:
        spread = "evenly over each cube"
    root = ", measured from no motion" if rule["root"] == "still" else ""
    unit = " × the clip's mean |Ψ|" if rule["epsilon_unit"] == "relative" else ""
    return f"rule {rule['name']}: ε = {rule['epsilon']:g}{unit}, {spread}{root}"
