"""The one base error class: its one-line message, and that every refusal the CLI maps derives from it."""

import pytest

from promedical.bench.adjudication.errors import AdjudicationError
from promedical.bench.agreement import AgreementError
from promedical.bench.cli import main
from promedical.bench.datasets import BenchDataError
from promedical.bench.errors import EXIT_BAD_INPUT, EXIT_FAILURE, PromedicalError, UnavailableError
from promedical.bench.judging import JudgeError
from promedical.bench.models.api import ApiError


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, "bad"),
    ({"path": "a.jsonl"}, "a.jsonl: bad"),
    ({"path": "a.jsonl", "line": 3}, "a.jsonl:3: bad"),
    ({"path": "a.jsonl", "line": 3, "field": "criteria[0].id"}, "a.jsonl:3: criteria[0].id: bad"),
    ({"field": "id"}, "id: bad"),
])
def test_message_leaves_out_absent_parts(kwargs, expected):
    error = PromedicalError("bad", **kwargs)
    assert error.message() == str(error) == expected
    assert error.report() == [expected] and error.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("cls", [BenchDataError, AdjudicationError, AgreementError, JudgeError, ApiError])
def test_every_refusal_is_a_promedical_error_and_still_a_value_error(cls):
    assert issubclass(cls, PromedicalError) and issubclass(cls, ValueError)


def test_exit_codes_and_existing_messages():
    assert BenchDataError("b.jsonl", "bad", 2, "id", more=2).message() == "b.jsonl:2: id: bad (and 2 more bad records)"
    assert JudgeError("no model").exit_code == EXIT_BAD_INPUT and str(JudgeError("no model")) == "no model"
    assert isinstance(ApiError("down"), UnavailableError) and ApiError("down").exit_code == EXIT_FAILURE
    assert str(AgreementError("odd")) == "odd" and AgreementError("odd").report() == ["agreement: odd"]
    several = AdjudicationError(["p1", "p2"])
    assert str(several) == "p1\np2"
    assert several.report() == ["p1", "p2", "refused (2 problems); nothing was written"]
    assert AdjudicationError(["p1"]).report() == ["p1"]


def test_main_prints_report_lines_and_exits_with_the_class_code(capsys, monkeypatch):
    from promedical.bench.cli import data

    def refuse(*args, **kwargs):
        raise AdjudicationError(["first", "second"])

    monkeypatch.setattr(data, "load_bench", refuse)
    assert main(["validate", "sample"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "error: first", "error: second", "error: refused (2 problems); nothing was written"]

    def unavailable(*args, **kwargs):
        raise ApiError("cannot reach the server")

    monkeypatch.setattr(data, "load_bench", unavailable)
    assert main(["validate", "sample"]) == EXIT_FAILURE
    assert capsys.readouterr().err == "error: cannot reach the server\n"
