"""The ``--require`` language: parsed by hand, evaluated on a run's values, never eval'd."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_mlops.drift.gate import gate_spec
from jupyter_mlops.errors import MLOpsUsageError
from jupyter_mlops.registry import checks
from jupyter_mlops.registry.checks import Compare, Field, Literal, RunValues, evaluate, parse
from jupyter_mlops.registry.gates import build_spec, require_check

RUN = RunValues(
    metrics={"val_acc": 0.93, "loss": 0.21, "val/f1": 0.8, "val acc": 0.5},
    params={"optimizer": "adam", "lr": "0.01", "epochs": "5"},
    tags={"team": "vision"},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.val_acc >= 0.9", True),
        ("metrics.val_acc > 0.93", False),
        ("metrics.val_acc == 0.93", True),
        ("metrics.val_acc = 0.93", True),
        ("metrics.loss <= 0.3 and metrics.val_acc >= 0.9", True),
        ("metrics.loss <= 0.1 or metrics.val_acc >= 0.9", True),
        ("metrics.loss <= 0.1 or metrics.val_acc >= 0.95", False),
        ("not metrics.loss > 0.3", True),
        ("not (metrics.loss < 0.3 and metrics.val_acc > 0.9)", False),
        ("(metrics.loss < 0.1 or metrics.val_acc > 0.9) and params.optimizer == 'adam'", True),
        ('params.optimizer != "sgd"', True),
        ("params.lr < 0.1", True),  # a param read as a number when compared with one
        ("params.epochs >= 5", True),
        ("tags.team == 'vision'", True),
        ("metrics.val/f1 > 0.5", True),
        ("metrics.`val acc` == 0.5", True),
        ("0.9 <= metrics.val_acc", True),
        ("metrics.val_acc >= 9e-1", True),
        ("metrics.val_acc >= .9", True),
        ("metrics.loss < 0.3 AND metrics.val_acc > 0.9", True),  # keywords in any case
    ],
)
def test_valid_expressions_evaluate_on_the_run(text: str, expected: bool) -> None:
    assert evaluate(parse(text), RUN) is expected


def test_precedence_and_binds_tighter_than_or() -> None:
    node = parse("metrics.a > 1 or metrics.b > 1 and metrics.c > 1")
    assert isinstance(node, checks.BoolOp) and node.op == "or"
    assert isinstance(node.items[1], checks.BoolOp) and node.items[1].op == "and"
    assert parse("metrics.a >= 0.5") == Compare(Field("metrics", "a"), ">=", Literal(0.5))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty expression"),
        ("metrics.val_acc >=", "unexpected end"),
        ("metrics.val_acc", "expected a comparison operator"),
        ("metrics.val_acc >= 0.9 and", "unexpected end"),
        ("(metrics.val_acc >= 0.9", "missing ')'"),
        ("metrics.val_acc >= 0.9)", "unexpected ')'"),
        ("metrics.val_acc >= 0.9 metrics.loss < 1", "unexpected 'metrics.loss'"),
        ("val_acc >= 0.9", "unknown name 'val_acc'"),
        ("metrics.a >= 0.9 ; rm -rf /", "unexpected ';"),
        ("metrics.a ** 2 > 1", "unexpected '*"),
    ],
)
def test_invalid_expressions_are_one_line_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(MLOpsUsageError) as info:
        parse(text)
    message = str(info.value)
    assert problem in message
    assert "\n" not in message
    assert "metrics.val_acc >= 0.9" in message  # the usage example


@pytest.mark.parametrize(
    "attack",
    [
        "__import__('os').system('touch pwned')",
        "metrics.a > 0 or __import__('os').system('touch pwned') == 0",
        "().__class__.__bases__[0].__subclasses__()",
        "exec('import os') == 1",
        "metrics.a.__class__() == 1",
        "lambda: 1",
        "metrics.a > 0 if True else 1",
        "open('/etc/passwd').read() == ''",
        "[x for x in ()] == 1",
    ],
)
def test_injection_attempts_are_refused(attack: str, tmp_path: Path) -> None:
    with pytest.raises(MLOpsUsageError):
        parse(attack)
    assert not (tmp_path / "pwned").exists()


def test_dunder_text_after_a_prefix_is_only_a_metric_name() -> None:
    node = parse("metrics.a.__class__ == 1")
    assert node == Compare(Field("metrics", "a.__class__"), "==", Literal(1.0))
    with pytest.raises(checks.MissingField):
        evaluate(node, RUN)


def test_missing_field_and_incomparable_values_fail_the_check_with_a_reason() -> None:
    missing = require_check("metrics.f1 >= 0.5", parse("metrics.f1 >= 0.5"), RUN)
    assert not missing.passed and missing.value is None
    assert "the run has no metrics.f1" in missing.detail and "val_acc" in missing.detail
    odd = require_check("params.optimizer > 1", parse("params.optimizer > 1"), RUN)
    assert not odd.passed and "cannot compare 'adam' > 1" in odd.detail
    both = require_check(
        "metrics.loss < 0.3 and params.optimizer == 'adam'",
        parse("metrics.loss < 0.3 and params.optimizer == 'adam'"),
        RUN,
    )
    assert both.passed and both.value == "metrics.loss=0.21, params.optimizer='adam'"
    assert both.threshold == "true"
    simple = require_check("metrics.loss < 0.3", parse("metrics.loss < 0.3"), RUN)
    assert (simple.value, simple.threshold, simple.passed) == (0.21, "< 0.3", True)


def test_vs_metric_and_direction_come_from_the_first_require() -> None:
    higher = build_spec(["metrics.val_acc >= 0.9"], vs="champion")
    assert (higher.metric, higher.lower_is_better) == ("val_acc", False)
    lower = build_spec(["metrics.loss <= 0.3", "metrics.val_acc > 0.5"], vs="champion")
    assert (lower.metric, lower.lower_is_better) == ("loss", True)
    flipped = build_spec(["0.3 >= metrics.loss"], vs="champion")
    assert flipped.lower_is_better
    explicit = build_spec(["metrics.loss <= 0.3"], vs="champion", metric="metrics.val_acc")
    assert (explicit.metric, explicit.lower_is_better) == ("val_acc", False)
    with pytest.raises(MLOpsUsageError, match="--vs needs a metric"):
        build_spec(["params.optimizer == 'adam'"], vs="champion")
    with pytest.raises(MLOpsUsageError, match="--min-delta needs --vs"):
        build_spec(["metrics.a > 1"], min_delta=0.1)
    with pytest.raises(MLOpsUsageError, match="give both, or neither"):
        gate_spec(reference="train@v1")
    with pytest.raises(MLOpsUsageError, match="--max-drift-share needs --reference"):
        gate_spec(["metrics.a > 1"], max_drift_share=0.2)
    with pytest.raises(MLOpsUsageError, match="nothing to check"):
        build_spec([])


@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
)
def test_comparisons_agree_with_python(value: float, bound: float, op: str) -> None:
    run = RunValues(metrics={"m": value}, params={}, tags={})
    expected = {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
        "==": value == bound,
        "!=": value != bound,
    }[op]
    assert evaluate(parse(f"metrics.m {op} {bound!r}"), run) is expected
