"""The router against evidence: our labelled set, and real utterances from public
datasets that must never trigger a direct action. Also the `classify` CLI."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cmd_classify
from router import Intent, classify, normalize

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests" / "data" / "intents.tsv"
SHARED_EVAL = ROOT.parent / "shared" / "eval"
NEGATIVES = sorted((SHARED_EVAL / "negatives").glob("*.txt"))
DIRECT = (Intent.EXPORT, Intent.CREDITS, Intent.STATUS, Intent.UPLOAD)


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def labelled() -> list[tuple[Intent, str]]:
    return list(cmd_classify.parse_labelled(LABELLED.read_text(encoding="utf-8").splitlines()))


def test_labelled_set_is_big_and_covers_every_case() -> None:
    pairs = labelled()
    assert len(pairs) >= 400
    by_intent = {i: [t for label, t in pairs if label is i] for i in Intent}
    assert len(by_intent[Intent.CHAT]) >= 150
    for intent in DIRECT:
        texts = by_intent[intent]
        assert any(t.isascii() for t in texts), intent
        assert any(t.startswith("/") for t in texts), intent
        assert any(classify(t).lang == "zh" for t in texts), intent
        assert any(classify(t).lang == "mixed" for t in texts), intent
        assert any(classify(t).reason.startswith("typo") for t in texts), intent
        # traditional characters: text that changes under t2s
        assert any(not t.isascii() and normalize(t) != t.casefold() for t in texts), intent
    assert any(classify(t).urls for t in by_intent[Intent.UPLOAD])
    hard = [t for t in by_intent[Intent.CHAT] if "no keyword" not in classify(t).reason]
    assert len(hard) >= len(by_intent[Intent.CHAT]) // 2


def test_labelled_accuracy_and_precision() -> None:
    report = cmd_classify.evaluate(labelled())
    assert report.accuracy >= 0.98, report.render()
    for intent in DIRECT:
        assert report.precision(intent) >= 0.99, report.render()


@pytest.mark.parametrize("path", NEGATIVES, ids=lambda p: p.name)
def test_negatives_rarely_trigger_a_direct_action(path: Path) -> None:
    lines = read_lines(path)
    wrong = [(t, classify(t)) for t in lines if classify(t).direct]
    rate = len(wrong) / len(lines)
    assert rate <= 0.003, "\n".join(f"{d.intent} {d.reason}: {t}" for t, d in wrong[:20])


def test_negatives_overall_rate() -> None:
    assert len(NEGATIVES) == 6
    total = wrong = 0
    for path in NEGATIVES:
        lines = read_lines(path)
        total += len(lines)
        wrong += sum(classify(t).direct for t in lines)
    assert total > 26_000
    assert wrong / total <= 0.001


# ------------------------------------------------------------------ the CLI module


def run_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cmd_classify.add_arguments(parser)
    return cmd_classify.main(parser.parse_args(argv))


def test_cli_prints_one_line_per_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["export", "先别导出", "upload https://example.com/a.mp4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("export ")
    assert "keyword 'export'" in lines[0]
    assert lines[1].startswith("chat ")
    assert "negation" in lines[1]
    assert "https://example.com/a.mp4" in lines[2]


def test_cli_eval_prints_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "sample.tsv"
    sample.write_text("export\texport\ncredits\t积分\nchat\tdon't export\nstatus\thello\n")
    assert run_main(["--eval", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "accuracy: 75.00%" in out
    assert "precision" in out and "recall" in out
    assert "confusion" in out
    assert "want status  got chat" in out


def test_cli_eval_rejects_unknown_labels(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("exprot\texport\n")
    assert run_main(["--eval", str(bad)]) == 2


def test_cli_without_input_is_a_usage_error() -> None:
    assert run_main([]) == 2


def _jsonl_process(cmd: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, input=data, capture_output=True, cwd=ROOT, timeout=110, check=False)


def test_jsonl_handles_100k_lines_in_one_run() -> None:
    texts = [t for _, t in labelled()]
    for path in NEGATIVES:
        texts.extend(read_lines(path))
    texts = (texts * (100_000 // len(texts) + 1))[:100_000]
    texts[7] = "bad \udcff byte"
    data = "\n".join(texts).encode("utf-8", "surrogateescape") + b"\n"
    code = (
        "import argparse, sys; from bot import cmd_classify as c; "
        "p = argparse.ArgumentParser(); c.add_arguments(p); "
        "sys.exit(c.main(p.parse_args(sys.argv[1:])))"
    )
    result = _jsonl_process([sys.executable, "-c", code, "--jsonl"], data)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8").splitlines()
    assert len(out) == 100_000
    first = json.loads(out[0])
    assert set(first) == {"text", "intent", "score", "reason", "lang", "urls"}
    assert first["text"] == texts[0]
    assert json.loads(out[7])["text"] == "bad \ufffd byte"
    routed = [json.loads(line)["intent"] for line in out[:500]]
    assert routed == [classify(t).intent.value for t in texts[:500]]


def test_nemobot_classify_end_to_end() -> None:
    result = _jsonl_process(
        [sys.executable, "-m", "bot", "classify", "--jsonl"],
        "导出\n/credits@NemoBot\nhi\n".encode(),
    )
    assert result.returncode == 0, result.stderr.decode()
    intents = [json.loads(line)["intent"] for line in result.stdout.decode().splitlines()]
    assert intents == ["export", "credits", "chat"]


CONTEXTS = {
    "negation": lambda t: f"don't {t}",
    "postponement": lambda t: f"{t} later",
    "quote": lambda t: f'add a title saying "{t}"',
    "sequence": lambda t: f"add music and then {t}",
    "zh negation": lambda t: f"先别{t}",
    "zh sequence": lambda t: f"加完字幕再{t}",
    "long instruction": lambda t: f"{t} and make the intro shorter with a soft fade and piano",
}


# A negation governs its own clause: "don't okay, export it" is not wrapped.
CLAUSE_SCOPED = {"negation", "zh negation"}
CLAUSE_BREAK = re.compile(r"[,.!?;，。！？；]")


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_context_turns_every_direct_example_into_chat(context: str) -> None:
    wrap = CONTEXTS[context]
    direct = [t for label, t in labelled() if label is not Intent.CHAT and not t.startswith("/")]
    if context in CLAUSE_SCOPED:
        direct = [t for t in direct if not CLAUSE_BREAK.search(t)]
    assert len(direct) > 250
    wrong = [wrap(t) for t in direct if classify(wrap(t)).direct]
    assert wrong == []


def test_stress_files_are_readable_and_reported() -> None:
    stress = sorted((SHARED_EVAL / "stress").glob("*.txt"))
    assert stress
    for path in stress:
        lines = read_lines(path)
        rate = sum(classify(t).direct for t in lines) / len(lines)
        print(f"stress {path.name}: {100 * rate:.2f}% direct")
        assert 0.0 <= rate <= 1.0
