"""Summarise a py-spy profile recorded with `--format raw` (collapsed stacks).

    .venv/bin/py-spy record --pid PID --duration 20 --rate 200 --format raw -o prof.txt
    .venv/bin/python bench/profile_report.py prof.txt [--top 30] [--match proca_server]

Prints, over the samples where the process was on CPU (py-spy leaves idle threads out unless
--idle was given):
- self time by function (the frame on top of the stack),
- inclusive time by function (every function on the stack, counted once per sample),
- inclusive time by "area": the first frame of the stack that belongs to one of a few
  packages (proca_server, strawberry, graphql, sqlalchemy, asyncpg, fastapi/starlette,
  uvicorn, nacl, pydantic), so one can see which layer a cost belongs to.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")

AREAS = [
    ("proca_server/", "proca_server"),
    ("strawberry/", "strawberry"),
    ("graphql/", "graphql-core"),
    ("sqlalchemy/", "sqlalchemy"),
    ("asyncpg/", "asyncpg"),
    ("starlette/", "starlette/fastapi"),
    ("fastapi/", "starlette/fastapi"),
    ("uvicorn/", "uvicorn"),
    ("nacl/", "pynacl"),
    ("pydantic", "pydantic"),
    ("asyncio/", "asyncio"),
]


# (label, substrings of a frame): a sample counts for a stage when any frame on its stack
# contains one of the substrings. SQLAlchemy's asyncio layer runs in greenlets, whose stacks
# py-spy shows without the request's frames above them, so "endpoint" undercounts by those.
STAGES = [
    ("HTTP endpoint (execute_request, excl. greenlet stacks)", ("execute_request (",)),
    ("GraphQL parse", ("_parse_operation_document (", "parse (graphql/language/parser.py")),
    ("GraphQL validate", ("validate (graphql/validation/validate.py",)),
    ("GraphQL execute (resolvers, arguments, result)", ("Schema._execute_operation (",)),
    ("proca_server name normalisation (names.py)", ("proca_server/graphql/names.py",)),
    ("addActionContact resolver", ("WidgetMutation.add_action_contact (",)),
    ("contact validation (contact/schemas.py)", ("validate_contact (",)),
    ("encryption (seal_for_org)", ("seal_for_org (",)),
    ("SQLAlchemy ORM flush", ("Session.flush (",)),
    ("SQLAlchemy Session.execute/get", ("Session.execute (", "Session.get (")),
    ("commit", ("Session.commit (",)),
    ("asyncpg (any frame)", ("asyncpg/",)),
    ("JSON encode of the answer", ("JSONResponse.render (", "_json (proca_server")),
]


def short(frame: str) -> str:
    m = FRAME_RE.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "src/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def area_of(stack: list[str]) -> str:
    # the innermost frame that belongs to a known package names the layer doing the work
    for frame in reversed(stack):
        for marker, name in AREAS:
            if marker in frame:
                return name
    return "other"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("raw", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument(
        "--match", default="", help="inclusive table: only functions whose text has this"
    )
    args = p.parse_args()

    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in args.raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        stack = [f for f in stack_text.split(";") if f]
        if stack and stack[0].startswith("process "):
            stack = stack[1:]
        if stack and stack[0].startswith("thread "):
            stack = stack[1:]
        if not stack:
            continue
        total += count
        self_time[short(stack[-1])] += count
        for name in {short(f) for f in stack}:
            inclusive[name] += count
        areas[area_of(stack)] += count
        for label, needles in STAGES:
            if any(n in f for f in stack for n in needles):
                stages[label] += count
    if not total:
        raise SystemExit("no samples")
    print(f"{total} samples on CPU")
    print("\n-- stages (inclusive)")
    for label, _ in STAGES:
        print(f"{100 * stages[label] / total:6.1f}%  {label}")
    print("\n-- self time (top of stack)")
    for name, n in self_time.most_common(args.top):
        print(f"{100 * n / total:6.1f}%  {name}")
    print("\n-- by layer (innermost known package on the stack)")
    for name, n in areas.most_common():
        print(f"{100 * n / total:6.1f}%  {name}")
    print(f"\n-- inclusive time{f' (matching {args.match!r})' if args.match else ''}")
    shown = 0
    for name, n in inclusive.most_common():
        if args.match and args.match not in name:
            continue
        print(f"{100 * n / total:6.1f}%  {name}")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()
