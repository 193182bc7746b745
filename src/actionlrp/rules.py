"""How relevance is handed down from layer to layer: a `Rule` is a value (design §5.1).

A rule fixes the ε of the ε-rule and its unit, how the histogram layer spreads a descriptor's
relevance over the motion field, and the root every layer's relevance is measured from. The
named presets are what ``--rule NAME`` takes on the command line:

========== ============ ======= =========================================================
name       histogram    root    what it does
========== ============ ======= =========================================================
fine       ``"bins"``   still   through each histogram bin to the vectors that filled it,
                                measured from no motion (the default everywhere)
paper      ``"flat"``   zero    each descriptor's relevance spread evenly over its cube
fine-zero  ``"bins"``   zero    the fine spreading with the plain ε-rule
========== ============ ======= =========================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

EpsilonUnit = Literal["relative", "absolute"]
Histogram = Literal["flat", "bins"]
Root = Literal["zero", "still"]
Bias = Literal["live", "energy"]
PcaScale = Literal["layer", "dimension"]
PcaRule = Literal["epsilon", "alpha-beta"]


@dataclass(frozen=True)
class Rule:
    """How relevance is handed down: ε (and its unit), how the histogram layer spreads, the root.

    Attributes
    ----------
    name : str
        What the rule is called in reports and on the command line.
    epsilon : float
        ε of the ε-rule in the Fisher and PCA layers (≥ 0); larger keeps (absorbs) more.
    epsilon_unit : {"relative", "absolute"}
        ``"relative"``: ε is a multiple of the clip's mean |Ψ_d| in the Fisher layer and of its
        mean |x′| in the PCA layer, so one ε suits every clip. ``"absolute"``: ε as it is, in
        the units of Ψ and of the projected descriptors.
    histogram : {"flat", "bins"}
        ``"flat"``: each descriptor's relevance spread evenly over the voxels of its cube (the
        paper). ``"bins"``: the Fisher layer hands relevance to each descriptor's histogram bins,
        and each bin's to the motion vectors that filled it (for MBH through the flow gradient).
    root : {"zero", "still"}
        ``"zero"``: the plain ε-rule, each contribution taken as it is. ``"still"``: every
        layer's contributions measured from those of a motionless cube, so where nothing moves
        nothing is relevant.
    bias : {"live", "energy"}
        How the SVM layer shares its bias b over the dimensions of Φ: ``"live"`` evenly over
        the D′ dimensions the clip populates (b / D′); ``"energy"`` in proportion to each
        dimension's share of ‖Φ‖² = 1 (b Φ_d²), so a nearly empty dimension gets nearly none.
    pca_epsilon : float or None
        ε of the PCA layer (``histogram="bins"`` or the still root), in ``epsilon_unit``; None:
        ``epsilon``.
    pca_scale : {"layer", "dimension"}
        With ``"relative"``: ε of the PCA layer in units of the clip's mean |x′| over all its
        dimensions (``"layer"``), or of each dimension's own (``"dimension"``: the low-variance
        components of PCA are not stabilised away).
    pca_rule : {"epsilon", "alpha-beta"}
        The PCA layer by the ε-rule, or by the α1β0 rule about the sign of each projected
        value: each output's relevance goes to the inputs that push it the way it went, in
        proportion to their push; exactly conservative, no ε.
    """

    name: str = "custom"
    epsilon: float = 0.01
    epsilon_unit: EpsilonUnit = "relative"
    histogram: Histogram = "bins"
    root: Root = "still"
    bias: Bias = "energy"
    pca_epsilon: float | None = None
    pca_scale: PcaScale = "layer"
    pca_rule: PcaRule = "alpha-beta"

    def __post_init__(self) -> None:
        for field, value in (("epsilon", self.epsilon), ("pca_epsilon", self.pca_epsilon)):
            if value is not None and not value >= 0:
                raise ValueError(f"rule {self.name!r}: {field} must be ≥ 0, got {value!r}")
        for field, value, allowed in (
            ("epsilon_unit", self.epsilon_unit, ("relative", "absolute")),
            ("histogram", self.histogram, ("flat", "bins")),
            ("root", self.root, ("zero", "still")),
            ("bias", self.bias, ("live", "energy")),
            ("pca_scale", self.pca_scale, ("layer", "dimension")),
            ("pca_rule", self.pca_rule, ("epsilon", "alpha-beta")),
        ):
            if value not in allowed:
                raise ValueError(
                    f"rule {self.name!r}: {field} must be one of {allowed}, got {value!r}"
                )

    @property
    def per_bin(self) -> bool:
        """True when the Fisher layer must hand relevance to each histogram bin: the fine
        spreading needs it, and so does the still root (its PCA layer works per input bin)."""
        return self.histogram == "bins" or self.root == "still"

    def summary(self) -> dict:
        """The rule as JSON-ready numbers and names (``summary.json``)."""
        return {
            "name": self.name,
            "epsilon": float(self.epsilon),
            "epsilon_unit": self.epsilon_unit,
            "histogram": self.histogram,
            "root": self.root,
            "bias": self.bias,
            "pca_epsilon": self.pca_epsilon,
            "pca_scale": self.pca_scale,
            "pca_rule": self.pca_rule,
        }


FINE = Rule(name="fine")
PAPER = Rule(
    name="paper", epsilon=1.0, histogram="flat", root="zero", bias="live", pca_rule="epsilon"
)
FINE_ZERO = dataclasses.replace(FINE, name="fine-zero", root="zero")

#: The presets by name.
RULES: dict[str, Rule] = {rule.name: rule for rule in (FINE, PAPER, FINE_ZERO)}
#: The rule `ActionModel.explain`, ``actionlrp explain`` and ``explain-dataset`` use by default.
DEFAULT_RULE = FINE


def get_rule(rule: Rule | str | None = None, epsilon: float | None = None) -> Rule:
    """A `Rule` from a preset's name or a rule (None: `DEFAULT_RULE`), with ``epsilon`` if given.

    Raises
    ------
    ValueError
        ``rule`` names no preset; the message lists them.

    Examples
    --------
    >>> get_rule("paper", epsilon=0.1).summary()  # doctest: +NORMALIZE_WHITESPACE
    {'name': 'paper', 'epsilon': 0.1, 'epsilon_unit': 'relative', 'histogram': 'flat',
     'root': 'zero', 'bias': 'live', 'pca_epsilon': None, 'pca_scale': 'layer',
     'pca_rule': 'epsilon'}
    >>> get_rule() is FINE
    True
    """
    if rule is None:
        rule = DEFAULT_RULE
    elif isinstance(rule, str):
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; the rules are: {', '.join(RULES)}")
        rule = RULES[rule]
    elif not isinstance(rule, Rule):
        raise TypeError(f"rule must be a Rule or a preset's name, got {type(rule).__name__}")
    if epsilon is not None and epsilon != rule.epsilon:
        rule = dataclasses.replace(rule, epsilon=float(epsilon))
    return rule
