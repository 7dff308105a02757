"""Where a task's body is in its workflow file, so tracebacks name that file and line.

The stored code starts with one line the API writes (shared/submit.ts codeObject):
    # dwop-source: {"file": "etl.workflow", "line": 9, "task": "transform"}
`line` is the line of `fun`; the body's first line is the file's next. The body is compiled as that
file, padded with blank lines so each line keeps its number, and its code object is named after the task:
    File "etl.workflow", line 10, in transform
"""

import os
import sys

from dwop_json import parse_json

MARK = b"# dwop-source: "


class Source:
    """The body's code and where it came from (the file name is main.py when the code has no mark)."""

    def __init__(self, code, filename, first_line, task):
        self.code = code
        self.filename = filename
        self.first_line = first_line
        self.task = task

    def padded(self):
        """The body as text whose line numbers are the workflow file's."""
        return "\n" * (self.first_line - 1) + self.code.decode("utf-8", "surrogateescape")

    def compile(self):
        code = compile(self.padded(), self.filename, "exec")
        if self.task and hasattr(code, "replace"):
            names = {"co_name": self.task}
            if hasattr(code, "co_qualname"):
                names["co_qualname"] = self.task
            code = code.replace(**names)
        return code

    def remember(self):
        """Puts the padded text where traceback's linecache finds it, so each frame shows its line."""
        import linecache

        lines = self.padded().splitlines(True)
        linecache.cache[self.filename] = (sum(map(len, lines)), None, lines, self.filename)


def read_source(path):
    """The Source of the code at path."""
    with open(path, "rb") as f:
        return source_of(f.read(), path)


def source_of(data, path):
    """The Source of code read from path."""
    if not data.startswith(MARK):
        return Source(data, path, 1, None)
    head, _, body = data.partition(b"\n")
    try:
        where = parse_json(head[len(MARK) :].decode("utf-8"))
        filename, line, task = str(where["file"]), int(where["line"]), where.get("task")
    except (ValueError, KeyError, TypeError):
        return Source(data, path, 1, None)
    if not filename or line < 1:
        return Source(data, path, 1, None)
    return Source(body, filename, line + 1, task if isinstance(task, str) and task.isidentifier() else None)


# A made-up body for rehearse() to compile: a function, calls, a comprehension, a file read, a formatted print.
REHEARSAL = b"""# dwop-source: {"file": "rehearsal.workflow", "line": 1, "task": "rehearsal"}
import sys

def step(n, *args, **kw):
    if n < 2 and not args:
        return [x for x in range(n + 1)][-1:]
    return step(n - 1) + step(n - 2)

with open("input") as f:
    text = f.read().strip().upper()
print(f"{text} {len(text):d}", len(step(10)), {"n": text}, file=sys.stderr)
"""


def rehearse():
    """In the body's process, while it waits for its run: a made-up body's source read (a file opened and
    read, its mark parsed) and compiled, not run. The first compile sets the compiler up, and the pages the
    parser, the compiler and the file's objects write are copied then (see dwop_main.rehearse), not on the
    run's path (1.1-1.3 -> 0.5 ms here). Running it as well took nothing more off the path, and cost 4-7 ms
    of CPU a run where page faults are dear."""
    with open(os.devnull, "rb") as f:
        f.read()
    source_of(REHEARSAL, "main.py").compile()


def exception_line(error):
    """The last line of the exception's traceback (`ValueError: bad row 42`), one line."""
    try:
        import traceback

        lines = [line.strip() for line in "".join(traceback.format_exception_only(type(error), error)).splitlines()]
        lines = [line for line in lines if line]
        # A SyntaxError's lines before the last show the code and a caret.
        text = lines[-1] if isinstance(error, SyntaxError) and lines else " ".join(lines)
    except BaseException:
        text = type(error).__name__
    return text or type(error).__name__


def print_exception(error, tb, source):
    """Prints the traceback as the interpreter would, with the workflow file's lines shown."""
    if sys.excepthook is not sys.__excepthook__:
        sys.excepthook(type(error), error, tb)
        return
    try:
        import traceback

        if source is not None:
            source.remember()
        traceback.print_exception(type(error), error, tb, file=sys.stderr)
    except BaseException:
        sys.__excepthook__(type(error), error, tb)
