"""The LLM path on a real local model: llama.cpp's OpenAI-compatible server, the product's evaluation through it.

Starts `python -m llama_cpp.server` (llama-cpp-python, in the interpreter `--server-python` names) on a GGUF model,
waits until it answers, and runs `python -m engine.evaluate` with LLM_PROVIDER=openai pointed at it: the EMQA
Smart TV questions (answerable from the TV manual, the knowledge base) and Galaxy S10 questions (out of scope),
a deterministic sample of each. With `--replay CASES`, it runs `python -m engine.evaluate replay CASES --kb ...`
through the same server afterwards. A recording proxy between the engine and the server reads every
chat completion on the wire, so the figures are the server's answers, not the engine's view of them.

Prints precision and coverage at the auto-send minimum (and the curve), how often the model's structured answers
are valid against the JSON schema the engine sent, how often it called a tool when offered tools, how often the
analysis fell back to retrieval, and the latency per ticket (p50/p95). The server is stopped on exit, Ctrl-C too.

    .venv/bin/python bench/llm_local.py ../shared/data --model MODEL.gguf --server-python /path/to/venv/bin/python

The model runs here only: CI never starts it (tests use tests/emulators/openai_api.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from evaluation import build_dataset  # noqa: E402

FALLBACK = "(fallback: retrieval-only)"
STARTUP_SECONDS = 600.0
BENCH_SETTINGS = {
    "LLM_TIMEOUT_SECONDS": "300",
    "LLM_MAX_RETRIES": "0",
    "LLM_TOOL_CALLING": "false",
    "LLM_STRUCTURED_OUTPUT": "function_calling",
}
"""A local server that has not answered in five minutes will not on a retry: retries would only hide the time.
llama-cpp-python's server parses a tool call only when it is forced (README: A local model), so the decision is one
forced function call; `--setting LLM_TOOL_CALLING=true` measures the agent instead."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Exchange:
    """One chat completion as seen on the wire."""

    seconds: float
    status: int
    schema: str | None
    """The name of the JSON schema the request asked the answer to follow (response_format json_schema)."""
    tools: list[str]
    schema_valid: bool | None
    tool_calls: list[str]
    tool_arguments_valid: bool | None
    prompt_tokens: int
    completion_tokens: int
    decision: str | None = None
    """What the model decided in a decision answer (its `decision` field), before the desk's rules read it."""


def judge(request: dict[str, Any], status: int, reply: dict[str, Any], seconds: float) -> Exchange:
    """What one answer was: valid against the requested schema, a tool call with valid arguments, or neither."""
    format_ = request.get("response_format") or {}
    schema = (format_.get("json_schema") or {}) if format_.get("type") == "json_schema" else {}
    offered = {tool["function"]["name"]: tool["function"].get("parameters") or {} for tool in request.get("tools", [])}
    message = ((reply.get("choices") or [{}])[0]).get("message") or {}
    calls = message.get("tool_calls") or []
    schema_valid = None
    if schema and status == 200:
        schema_valid = not calls and valid(message.get("content"), schema.get("schema") or {})
    arguments_valid = None
    if offered and calls:
        arguments_valid = all(
            call["function"]["name"] in offered
            and valid(call["function"].get("arguments"), offered[call["function"]["name"]])
            for call in calls
        )
    usage = reply.get("usage") or {}
    answers = [call["function"].get("arguments") for call in calls] or [message.get("content")]
    return Exchange(
        seconds=seconds,
        status=status,
        schema=schema.get("name"),
        tools=list(offered),
        schema_valid=schema_valid,
        tool_calls=[call["function"]["name"] for call in calls],
        tool_arguments_valid=arguments_valid,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        decision=next((found for found in map(decision_in, answers) if found), None),
    )


def decision_in(text: str | None) -> str | None:
    """The `decision` field of a JSON answer, if it is one that has it."""
    try:
        document = json.loads(text or "")
    except json.JSONDecodeError:
        return None
    found = document.get("decision") if isinstance(document, dict) else None
    return str(found) if found else None


def valid(text: str | None, schema: dict[str, Any]) -> bool:
    try:
        document = json.loads(text or "")
    except json.JSONDecodeError:
        return False
    return not any(True for _ in Draft202012Validator(schema).iter_errors(document))


@dataclass
class Recorder:
    """Every chat completion that passed the proxy, in order."""

    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, exchange: Exchange) -> None:
        with self.lock:
            self.exchanges.append(exchange)

    def take(self) -> list[Exchange]:
        with self.lock:
            taken, self.exchanges = self.exchanges, []
            return taken


def proxy_handler(upstream: str, recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._forward(None)

        def do_POST(self) -> None:
            self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _forward(self, body: bytes | None) -> None:
            request = urllib.request.Request(  # noqa: S310 (loopback, our own server)
                upstream + self.path,
                data=body,
                method=self.command,
                headers={"Content-Type": self.headers.get("Content-Type") or "application/json"},
            )
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=3600) as answer:  # noqa: S310
                    status, payload = answer.status, answer.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
            seconds = time.perf_counter() - began
            if body is not None and self.path.endswith("/chat/completions"):
                try:
                    reply = json.loads(payload) if status == 200 else {}
                except json.JSONDecodeError:
                    reply = {}
                recorder.add(judge(json.loads(body), status, reply, seconds))
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the engine stopped waiting (LLM_TIMEOUT_SECONDS): the answer is recorded, not delivered

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the bench prints its own summary."""

    return Forward


@contextmanager
def llama_server(python: str, model: Path, alias: str, threads: int, context: int, log: Path) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on a free loopback port; its base URL while it runs, stopped after."""
    port = free_port()
    command = [
        python,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        alias,
        "--n_threads",
        str(threads),
        "--n_ctx",
        str(context),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(server, base, log)
        yield base
    finally:
        stop(server)


def wait_for(server: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the llama.cpp server exited ({server.returncode}):\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/v1/models", timeout=5) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"the llama.cpp server did not answer within {STARTUP_SECONDS:.0f} s; its log: {log}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextmanager
def recording_proxy(upstream: str, recorder: Recorder) -> Iterator[str]:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), proxy_handler(upstream, recorder))
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


def sample_cases(dataset: Path, in_scope: int, out_of_scope: int, seed: int) -> tuple[int, int]:
    """Keep a deterministic sample of each kind of question, in a shuffled order."""
    cases = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    answerable = [case for case in cases if case["expected_action"] == "resolve"]
    other = [case for case in cases if case["expected_action"] != "resolve"]
    chosen = rng.sample(answerable, min(in_scope, len(answerable))) + rng.sample(other, min(out_of_scope, len(other)))
    rng.shuffle(chosen)
    dataset.write_text("\n".join(json.dumps(case) for case in chosen) + "\n", encoding="utf-8")
    return min(in_scope, len(answerable)), min(out_of_scope, len(other))


def shrink_knowledge(knowledge: Path, dataset: Path, sections: int, seed: int) -> int:
    """Keep the sections the sampled questions need and random others up to `sections` (0: the whole manual):
    indexing and self-calibrating all 261 sections takes longer on two shared cores than the model's run."""
    files = sorted(knowledge.iterdir())
    if not sections or sections >= len(files):
        return len(files)
    cases = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip()]
    needed = {prefix for case in cases for prefix in case.get("expected_evidence", [])}
    kept = [file for file in files if file.name[:7] in needed]
    others = [file for file in files if file not in kept]
    kept += random.Random(seed).sample(others, max(0, min(len(others), sections - len(kept))))
    for file in set(files) - set(kept):
        file.unlink()
    return len(kept)


def engine_environment(base_url: str, alias: str, settings: dict[str, str], data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **settings,
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "OPENAI_API_KEY": "",
        "OPENAI_CHAT_MODEL": alias,
        "DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "0/0"


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile by linear interpolation (the p50/p95 of a few dozen tickets)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def print_wire(exchanges: list[Exchange]) -> None:
    """JSON-schema validity, tool-call use and the server's speed, from the answers on the wire."""
    structured = [exchange for exchange in exchanges if exchange.schema_valid is not None]
    offered = [exchange for exchange in exchanges if exchange.tools]
    called = [exchange for exchange in offered if exchange.tool_calls]
    finishing = Counter(name for exchange in called for name in exchange.tool_calls)
    failed = [exchange for exchange in exchanges if exchange.status != 200]
    print(f"model calls: {len(exchanges)} ({len(failed)} failed at the server)")
    schemas = Counter(exchange.schema for exchange in structured)
    for schema, count in sorted(schemas.items(), key=lambda item: str(item[0])):
        good = sum(1 for exchange in structured if exchange.schema == schema and exchange.schema_valid)
        print(f"  JSON-schema validity, {schema}: {share(good, count)} answers valid against the schema sent")
    if structured:
        good = sum(1 for exchange in structured if exchange.schema_valid)
        print(f"  JSON-schema validity, all structured answers: {share(good, len(structured))}")
    if offered:
        valid_arguments = sum(1 for exchange in called if exchange.tool_arguments_valid)
        print(
            f"  tool calls: {share(len(called), len(offered))} turns offered tools called one; arguments valid "
            f"{share(valid_arguments, len(called))}; tools called: {dict(finishing) or 'none'}"
        )
    decided = Counter(exchange.decision for exchange in exchanges if exchange.decision)
    if decided:
        print(f"  the model's own decisions, before the desk's rules: {dict(decided)}")
    if exchanges:
        prompt = sum(exchange.prompt_tokens for exchange in exchanges)
        completion = sum(exchange.completion_tokens for exchange in exchanges)
        seconds = sum(exchange.seconds for exchange in exchanges)
        print(
            f"  tokens: {prompt} prompt, {completion} completion in {seconds:.0f} s of model time "
            f"(p50 {percentile([e.seconds for e in exchanges], 0.5):.1f} s a call)"
        )


def print_evaluation(result: dict[str, Any], threshold: float) -> None:
    cases = result["per_case"]
    fell_back = [case for case in cases if case["analyser"].endswith(FALLBACK)]
    reasons = Counter((case["error"] or "").split(":")[0] or "no error recorded" for case in fell_back)
    print(
        f"\ntickets: {result['cases']}; decision accuracy {result['decision_accuracy']}, hit@5 {result['hit_at_5']}; "
        f"decisions {dict(Counter(case['decision'] for case in cases))}"
    )
    print(
        f"auto-send at the minimum {threshold:.2f}: precision {result['auto_send_precision']}, coverage "
        f"{result['coverage']} (answerable {result['answerable_coverage']}), sent {result['auto_sent']}, "
        f"out-of-scope sent {result['unanswerable_sent']}"
    )
    sending = [point for point in result["threshold_curve"] if point["auto_sent"]]
    for point in sending[:: max(1, len(sending) // 6)]:
        print(
            f"  threshold {point['threshold']:.2f}: precision {point['auto_send_precision']}, coverage "
            f"{point['coverage']}, sent {point['auto_sent']}, out-of-scope sent {point['unanswerable_sent']}"
        )
    print(f"the model decided {share(len(cases) - len(fell_back), len(cases))} tickets; fell back to retrieval on")
    print(f"  {len(fell_back)}: {dict(reasons) or 'none'}")
    stated = [case for case in cases if case["stated_confidence"] is not None]
    if stated:
        print(
            f"stated confidence (mean) {statistics.fmean(case['stated_confidence'] for case in stated):.2f}, "
            f"calibrated by the desk {statistics.fmean(case['confidence'] for case in stated):.2f} "
            f"(expected calibration error of the calibrated confidence {result['expected_calibration_error']})"
        )
    seconds = [case["latency_ms"] / 1000 for case in cases]
    if seconds:
        print(
            f"latency per ticket: p50 {percentile(seconds, 0.5):.1f} s, p95 {percentile(seconds, 0.95):.1f} s, "
            f"max {max(seconds):.1f} s"
        )


def run_engine(arguments: list[str], environment: dict[str, str]) -> None:
    command = [sys.executable, "-m", "engine.evaluate", *arguments]
    finished = subprocess.run(command, cwd=ROOT, env=environment, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:4])} failed with exit code {finished.returncode}")


def parse_settings(values: list[str]) -> dict[str, str]:
    settings = dict(BENCH_SETTINGS)
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.isupper():
            raise SystemExit(f"--setting takes NAME=VALUE with an upper-case setting name, not {value!r}")
        settings[name] = setting
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the shared data folder (holds emanual-qa/)")
    parser.add_argument("--model", type=Path, required=True, help="the GGUF file (README: Local models)")
    parser.add_argument("--alias", help="the model's name on the wire (default: the file's name)")
    parser.add_argument("--server-python", default=sys.executable, help="an interpreter with llama-cpp-python[server]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=8192, help="the server's context window in tokens")
    parser.add_argument("--in-scope", type=int, default=24, help="answerable Smart TV questions to sample")
    parser.add_argument("--out-of-scope", type=int, default=8, help="Galaxy S10 questions to sample")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--sections", type=int, default=0, help="manual sections to index (0: all 261)")
    parser.add_argument("--replay", type=Path, help="also replay these cases (python -m engine.evaluate replay)")
    parser.add_argument(
        "--replay-kb", type=Path, nargs="*", help="the replay's knowledge base (default: the TV manual)"
    )
    parser.add_argument(
        "--setting", action="append", default=[], help=f"NAME=VALUE for the engine (defaults: {BENCH_SETTINGS})"
    )
    parser.add_argument("--out", type=Path, default=Path("llm-local-report.json"))
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"no model file at {args.model}")
    alias = args.alias or args.model.stem
    settings = parse_settings(args.setting)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # run the clean-ups, as Ctrl-C does
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        dataset, knowledge, _ = build_dataset(args.data_dir, folder)
        in_scope, out_of_scope = sample_cases(dataset, args.in_scope, args.out_of_scope, args.seed)
        sections = shrink_knowledge(knowledge, dataset, args.sections, args.seed)
        recorder = Recorder()
        log = folder / "llama-server.log"
        print(
            f"model {alias} ({args.model.stat().st_size / 1e6:.0f} MB) on llama.cpp's OpenAI-compatible server, "
            f"{args.threads} threads, context {args.context}; engine settings {settings}",
            flush=True,
        )
        began = time.perf_counter()
        with (
            llama_server(args.server_python, args.model, alias, args.threads, args.context, log) as upstream,
            recording_proxy(upstream, recorder) as proxy,
        ):
            print(f"server ready in {time.perf_counter() - began:.0f} s", flush=True)
            environment = engine_environment(proxy, alias, settings, folder / "engine")
            began = time.perf_counter()
            run_engine([str(dataset), "--kb", str(knowledge), "--out", str(args.out)], environment)
            result = json.loads(args.out.read_text(encoding="utf-8"))
            print(
                f"\n=== {alias}: {in_scope} Smart TV questions (answerable), {out_of_scope} Galaxy S10 (out of scope)"
            )
            print(f"knowledge base: {sections} sections of the Smart TV manual")
            print(f"evaluation took {time.perf_counter() - began:.0f} s (indexing and self-calibration included)")
            print_evaluation(result, result["auto_send_threshold"])
            print_wire(recorder.take())
            if args.replay:
                replay_out = args.out.with_name(f"{args.out.stem}-replay.json")
                kb = [str(path) for path in (args.replay_kb or [knowledge])]
                run_engine(["replay", str(args.replay), "--kb", *kb, "--json", str(replay_out)], environment)
                print(f"\n=== replay of {args.replay} ({alias})")
                print_wire(recorder.take())
        print(f"\nreport saved to {args.out}")


if __name__ == "__main__":
    main()
