"""The router against evidence: our two labelled sets, and real utterances from public
datasets (vendored in tests/data) that must never trigger a direct action. Also the
`classify` CLI."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import classify as cmd_classify
from router import Intent, classify, normalize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
LABELLED = DATA / "intents.tsv"
FRESH = DATA / "intents_fresh.tsv"
# Named, not globbed: a corpus that goes missing fails the run instead of shrinking it.
NEGATIVES = [
    DATA / "negatives" / name
    for name in (
        "banking77.txt",
        "clinc150_inscope.txt",
        "clinc150_oos.txt",
        "crosswoz_user_zh.txt",
        "hwu64.txt",
        "snips.txt",
    )
]
STRESS = [DATA / "stress" / "banking77_balance_topup.tsv", DATA / "stress" / "clinc150_overlap.tsv"]
DIRECT = (Intent.EXPORT, Intent.CREDITS, Intent.STATUS, Intent.UPLOAD)


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def labelled(path: Path = LABELLED) -> list[tuple[Intent, str]]:
    return list(cmd_classify.parse_labelled(path.read_text(encoding="utf-8").splitlines()))


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


@pytest.mark.parametrize("path", [LABELLED, FRESH], ids=lambda p: p.name)
def test_labelled_accuracy_recall_and_no_false_action(path: Path) -> None:
    report = cmd_classify.evaluate(labelled(path))
    assert report.accuracy >= 0.97, report.render()
    for intent in DIRECT:
        assert report.recall(intent) >= 0.95, report.render()
    assert report.false_direct_rate() == 0.0, report.render()


def test_fresh_set_is_big_bilingual_and_frozen_with_reasons() -> None:
    pairs = labelled(FRESH)
    assert len(pairs) >= 400
    texts = [t for _, t in pairs]
    # written apart from intents.tsv: only the commonest short messages recur ("/export", "ok")
    assert len(set(texts) & {t for _, t in labelled()}) <= len(texts) // 10
    assert sum(classify(t).lang != "en" for t in texts) >= 100
    header = [line for line in FRESH.read_text("utf-8").splitlines() if line.startswith("#")]
    assert any("Relabelled" in line for line in header)


def test_public_corpora_are_vendored_with_their_sources() -> None:
    readme = (DATA / "README.md").read_text("utf-8")
    for path in [*NEGATIVES, *STRESS]:
        assert path.is_file(), f"missing corpus {path}"
        assert path.name in readme
    for licence in ("CC BY 3.0", "CC BY 4.0", "CC0", "Apache-2.0"):
        assert licence in readme


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
    assert run_main(["export", "先别导出", "upload https://example.com/a.mp4", "export 4k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[3].endswith("options: resolution=2160p")
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
        "import argparse, sys; from bot.cli import classify as c; "
        "p = argparse.ArgumentParser(); c.add_arguments(p); "
        "sys.exit(c.main(p.parse_args(sys.argv[1:])))"
    )
    result = _jsonl_process([sys.executable, "-c", code, "--jsonl"], data)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8").splitlines()
    assert len(out) == 100_000
    first = json.loads(out[0])
    assert set(first) == {"text", "intent", "score", "reason", "lang", "urls", "options"}
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
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["intent"] for r in records] == ["export", "credits", "chat"]
    assert [r["options"] for r in records] == [{}, {}, {}]


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


@pytest.mark.parametrize("path", STRESS, ids=lambda p: p.name)
def test_stress_chat_lines_never_trigger_a_direct_action(path: Path) -> None:
    rows = [line.split("\t", 1) for line in read_lines(path)]
    assert {label for label, _ in rows} <= {"chat", "either"}
    chat = [text for label, text in rows if label == "chat"]
    assert len(chat) >= 400
    wrong = [(t, classify(t)) for t in chat if classify(t).direct]
    assert wrong == [], "\n".join(f"{d.intent} {d.reason}: {t}" for t, d in wrong)
