"""`nemobot classify`: show how the intent router reads texts, one per line or as JSON lines,
and score it against a labelled file."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from router import Decision, Intent, classify

INTENTS: tuple[Intent, ...] = tuple(Intent)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify, one line each")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--jsonl",
        action="store_true",
        help="read lines from standard input, write one JSON object per line",
    )
    mode.add_argument(
        "--eval",
        metavar="FILE",
        type=Path,
        help="score a labelled file (label<TAB>text; a line without a tab is labelled chat)",
    )
    p.add_argument(
        "--show-errors",
        type=int,
        default=20,
        metavar="N",
        help="with --eval, list up to N misrouted lines (default 20)",
    )


def describe(text: str, decision: Decision) -> str:
    """One readable line: intent, score, language, reason, the text, links and options."""
    links = f"  links: {' '.join(decision.urls)}" if decision.urls else ""
    if decision.options:
        read = " ".join(f"{k}={v}" for k, v in decision.options.as_dict().items())
        links += f"  options: {read}"
    shown = text if len(text) <= 80 else text[:77] + "..."
    return (
        f"{decision.intent.value:<7} {decision.score:.2f} {decision.lang:<5} "
        f"{decision.reason}  <- {shown!r}{links}"
    )


def as_json(text: str, decision: Decision) -> str:
    record = {
        "text": text,
        "intent": decision.intent.value,
        "score": round(decision.score, 4),
        "reason": decision.reason,
        "lang": decision.lang,
        "urls": list(decision.urls),
        "options": decision.options.as_dict(),
    }
    return json.dumps(record, ensure_ascii=False)


@dataclass
class Report:
    """Accuracy, per-intent precision/recall and the confusion matrix of one labelled run."""

    total: int = 0
    correct: int = 0
    confusion: Counter[tuple[Intent, Intent]] = field(default_factory=Counter)
    errors: list[tuple[Intent, Decision, str]] = field(default_factory=list)

    def add(self, label: Intent, text: str) -> None:
        decision = classify(text)
        self.total += 1
        self.confusion[(label, decision.intent)] += 1
        if decision.intent is label:
            self.correct += 1
        else:
            self.errors.append((label, decision, text))

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def precision(self, intent: Intent) -> float:
        predicted = sum(n for (_, got), n in self.confusion.items() if got is intent)
        return self.confusion[(intent, intent)] / predicted if predicted else 1.0

    def recall(self, intent: Intent) -> float:
        actual = sum(n for (want, _), n in self.confusion.items() if want is intent)
        return self.confusion[(intent, intent)] / actual if actual else 1.0

    def false_direct_rate(self) -> float:
        """Share of chat-labelled lines sent to a direct action."""
        chat = sum(n for (want, _), n in self.confusion.items() if want is Intent.CHAT)
        wrong = sum(
            n
            for (want, got), n in self.confusion.items()
            if want is Intent.CHAT and got is not Intent.CHAT
        )
        return wrong / chat if chat else 0.0

    def render(self, show_errors: int = 20) -> str:
        lines = [f"lines: {self.total}   accuracy: {100 * self.accuracy:.2f}%"]
        lines.append(f"false direct actions on chat lines: {100 * self.false_direct_rate():.3f}%")
        lines.append("")
        lines.append(f"{'intent':<8} {'precision':>9} {'recall':>7} {'support':>8}")
        for intent in INTENTS:
            support = sum(n for (want, _), n in self.confusion.items() if want is intent)
            lines.append(
                f"{intent.value:<8} {100 * self.precision(intent):8.2f}% "
                f"{100 * self.recall(intent):6.2f}% {support:>8}"
            )
        lines.append("")
        lines.append("confusion (rows: label, columns: routed)")
        lines.append(" " * 9 + "".join(f"{i.value:>8}" for i in INTENTS))
        for want in INTENTS:
            cells = "".join(f"{self.confusion[(want, got)]:>8}" for got in INTENTS)
            lines.append(f"{want.value:<9}{cells}")
        if self.errors and show_errors > 0:
            lines.append("")
            lines.append(f"misrouted ({len(self.errors)}):")
            for label, decision, text in self.errors[:show_errors]:
                lines.append(f"  want {label.value:<7} got {describe(text, decision)}")
        return "\n".join(lines)


def parse_labelled(lines: Iterable[str]) -> Iterable[tuple[Intent, str]]:
    """label<TAB>text lines; a line without a tab is a chat utterance. Blank and # lines skip."""
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            yield Intent.CHAT, line
            continue
        label, text = line.split("\t", 1)
        try:
            yield Intent(label.strip().lower()), text
        except ValueError:
            raise ValueError(f"line {number}: unknown label {label!r}") from None


def evaluate(pairs: Iterable[tuple[Intent, str]]) -> Report:
    report = Report()
    for label, text in pairs:
        report.add(label, text)
    return report


def _stdin_lines() -> Iterable[str]:
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    for line in stream:
        yield line.rstrip("\r\n")


def run_jsonl(lines: Iterable[str], out: TextIO) -> int:
    """Stream classifications; writes in batches so 100k lines stay fast."""
    batch: list[str] = []
    count = 0
    for text in lines:
        batch.append(as_json(text, classify(text)))
        count += 1
        if len(batch) >= 1000:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()
    return count


def _utf8_stdout() -> TextIO:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    return sys.stdout


def main(args: argparse.Namespace) -> int:
    out = _utf8_stdout()
    if getattr(args, "jsonl", False):
        run_jsonl(_stdin_lines(), out)
        return 0
    eval_file: Path | None = getattr(args, "eval", None)
    if eval_file is not None:
        try:
            text = eval_file.read_text(encoding="utf-8", errors="replace")
            report = evaluate(parse_labelled(text.splitlines()))
        except (OSError, ValueError) as exc:
            print(f"nemobot classify: {exc}", file=sys.stderr)
            return 2
        print(report.render(getattr(args, "show_errors", 20)), file=out)
        return 0
    texts: Sequence[str] = getattr(args, "texts", []) or []
    if not texts:
        print("nemobot classify: give TEXT..., --jsonl or --eval FILE", file=sys.stderr)
        return 2
    for item in texts:
        print(describe(item, classify(item)), file=out)
    return 0


__all__ = ["Report", "add_arguments", "as_json", "describe", "evaluate", "main", "parse_labelled"]
