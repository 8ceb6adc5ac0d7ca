"""Instructions a span of the core's Aperture records (`aperture_records` over the peers.py
GenAI request, four seeds in turn), counted by valgrind's callgrind: the same count every run,
where this host's timings swing by a fifth within minutes. With `--against DIR` (another
checkout with its core built, e.g. a `git worktree` of the commit before), the same count
there too, and this tree's against it.

Each tree runs twice under callgrind, with `--rounds` calls and with a quarter of them;
the difference, per span, leaves out the interpreter's start and the first call's imports.
callgrind counts each iteration of a `rep movsb` copy, so the copies weigh more here than
in time.

    python bench/records_callgrind.py [--rounds 40] [--against /tmp/base] [--top 15] [--content cjk]

`--content` rewrites the prompts and completions first (`lines`: a line break every ten
words; `cjk`: a CJK character a word, written as `json.dumps` writes it, every one a `\\u`
escape), for the parser's and the writer's escapes.

Needs valgrind (Debian's `valgrind`). Not a test: nothing in tests/ imports it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SPANS = 100

LOOP = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
import peers
from otlp_router.model import genai

def reshaped(request, content):
    # The prompts and completions rewritten as `content` says, written as OpenLLMetry writes
    # them (json.dumps: non-ASCII as \\u escapes).
    for span in request.resource_spans[0].scope_spans[0].spans:
        for kv in span.attributes:
            if kv.key in ("gen_ai.prompt", "gen_ai.completion"):
                messages = json.loads(kv.value.string_value)
                for m in messages:
                    words = m["content"].split(" ")
                    if content == "lines":
                        m["content"] = "\\n".join(" ".join(words[i:i + 10]) for i in range(0, len(words), 10))
                    elif content == "cjk":
                        m["content"] = "".join(chr(0x4E00 + len(w) * 977 % 20000) for w in words)
                kv.value.string_value = json.dumps(messages)
    return request

wires = [reshaped(peers.genai_request(seed=s), sys.argv[3]).SerializeToString() for s in range(4)]
core = genai.native_table()
for i in range(int(sys.argv[2])):
    core.aperture_records(wires[i & 3], 0, 0, 1, False, None)
"""
CONTENTS = {"bench": "the bench's (ASCII words, no escapes)", "lines": "a line break every ten words",
            "cjk": "a CJK character for each word, so every character an escape"}


def _profile(tree: Path, rounds: int, out: Path, content: str) -> None:
    # One hash seed for every run: Python's dicts then take the same steps in both trees.
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    "--toggle-collect=*__pymethod_aperture_records__*",
                    sys.executable, "-c", LOOP, str(tree), str(rounds), content],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})


def _by_function(path: Path) -> collections.Counter[str]:
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(path)],
                          check=True, capture_output=True, text=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)$", line)
        if found and "PROGRAM TOTALS" not in line:
            name = re.sub(r"\s*\[.*\]$", "", found[2]).split(":", 1)[-1]
            counts[name.replace("otlp_router_native::", "")] += int(found[1].replace(",", ""))
    return counts


def count(tree: Path, rounds: int, work: Path, content: str = "bench") -> collections.Counter[str]:
    """Instructions a span, by function, of `aperture_records` in `tree`."""
    work = Path(tempfile.mkdtemp(dir=work))
    few, many = work / "few", work / "many"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: _profile(tree, *job, content), [(rounds // 4, few), (rounds, many)]))
    a, b = _by_function(few), _by_function(many)
    spans = (rounds - rounds // 4) * SPANS
    return collections.Counter({k: (b[k] - a[k]) / spans for k in b})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="calls of 100 spans in the longer run")
    parser.add_argument("--against", type=Path, help="another checkout to count too: the baseline")
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    parser.add_argument("--content", choices=CONTENTS, default="bench",
                        help="the prompts and completions: " + "; ".join(f"{k}: {v}" for k, v in CONTENTS.items()))
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as work:
        here = count(HERE, args.rounds, Path(work), args.content)
        base = count(args.against.resolve(), args.rounds, Path(work), args.content) if args.against else None
    total = sum(here.values())
    print(f"aperture_records: {total:,.0f} instructions a span ({HERE})")
    if base is not None:
        print(f"baseline:         {sum(base.values()):,.0f} instructions a span ({args.against}); "
              f"this tree / baseline {total / sum(base.values()):.3f}")
    for name, n in here.most_common(args.top):
        was = f"  (baseline {base[name]:,.0f})" if base is not None else ""
        print(f"{n:9,.0f} {100 * n / total:5.1f}%  {name[:100]}{was}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
