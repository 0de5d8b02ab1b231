"""Turn traceback text, as users paste it, into exceptions and frames.

Pasted tracebacks come in many wrappers: plain Python, IPython 7 and 8 (``Cell In[3]``,
``----> 12`` arrows, ANSI colours), torchrun's ``[rank0]:`` prefixes, logging timestamps,
ComfyUI's ``!!! Exception during processing !!!`` and its markdown error report, Windows
paths, GitHub code fences and quotes, and tracebacks cut down to their last line. This
module only reads text; it knows nothing about what the errors mean (see ``_patterns``).

Everything here is plain strings and ints: nothing keeps a frame or traceback alive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A pasted log can be huge; the error is at its end, so keep the tail. A line longer than any
# traceback line (a dumped tensor, a minified blob) is cut: the start says what it is.
MAX_CHARS = 100_000
MAX_LINE = 4000
_MAX_MESSAGE_LINES = 60


@dataclass(frozen=True)
class Frame:
    """One stack frame: where it is and the source line it was executing ("" if unknown)."""

    path: str  # as printed, with "/" separators
    line: int | None
    func: str  # qualified as printed, e.g. "WanPipeline.__call__" or "decode"
    code: str = ""

    @property
    def name(self) -> str:
        """The bare function name (``__call__`` for ``WanPipeline.__call__``)."""
        return self.func.rsplit(".", 1)[-1]

    @property
    def is_user(self) -> bool:
        """True for a notebook cell or an interactive prompt: the user's own code."""
        return bool(_USER_PATH.search(self.path))

    def describe(self) -> str:
        """``.../autoencoders/autoencoder_kl_wan.py:1213 in _decode`` (short, for evidence)."""
        parts = self.path.split("/")
        tail = "/".join(parts[-3:]) if len(parts) > 3 else self.path
        where = f"{tail}:{self.line}" if self.line is not None else tail
        return f"{where} in {self.func}"


@dataclass
class ParsedError:
    """One exception of a (possibly chained) traceback; frames run outermost first."""

    type: str = ""  # as printed: "torch.OutOfMemoryError", "OSError", "" when none was seen
    message: str = ""
    frames: list[Frame] = field(default_factory=list)
    # Base-class names when known (live exceptions), to test "is an ImportError" etc.
    bases: tuple[str, ...] = ()

    @property
    def short_type(self) -> str:
        return self.type.rsplit(".", 1)[-1]

    @property
    def first_line(self) -> str:
        return self.message.strip().split("\n", 1)[0].strip() if self.message.strip() else ""


@dataclass
class ParsedText:
    """What was read from a text: the exception chain (last is the one raised) and context."""

    errors: list[ParsedError]
    lines: list[str]  # normalised lines, for hints such as progress bars and node names
    wrappers: tuple[str, ...] = ()

    @property
    def final(self) -> ParsedError:
        return self.errors[-1] if self.errors else ParsedError()


# --- normalisation -----------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# Colour codes whose ESC was lost on the way (copied from a rendered notebook): "[0;31m".
_BARE_ANSI = re.compile(r"(?<![\w\]])\[[0-9;]{1,12}m")
_BARE_ANSI_HINT = re.compile(r"\[[0-9;]{1,12}m")  # starts with a literal: a fast scan
_PREFIXES = [
    # torchrun / accelerate launch: "[rank0]: ", "[default0]:", "rank0: "
    ("torchrun", re.compile(r"^\s*\[(?:rank|default|local_rank)\s*\d+\]\s*:\s?")),
    # docker compose: "comfyui-1  | ", "comfyui-rocm  | " (a service name with a hyphen)
    ("docker", re.compile(r"^[\w.]+(?:-[\w.]+)+\s+\|(?:\s|$)")),  # (an empty line's prefix, stripped: "x-1  |")
    # SD.Next: "17:12:59-835209 ERROR    Processing: ..." (time, microseconds, level)
    ("timestamp", re.compile(r"^\s*\d{2}:\d{2}:\d{2}-\d{3,6}\s+(?:TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+")),
    # elapsed-time stamps "[t+1m49s004ms] " and Ray's "(pid=3787908) "
    ("timestamp", re.compile(r"^\s*\[t\+[\dhms]+\]\s?")),
    ("ray", re.compile(r"^\s*\((?:\w+ )?pid=\d+\)\s?")),
    # an app's tag in front of a traceback line: "[wan2gp]   File ...", "[wan2gp] Traceback ..."
    ("tag", re.compile(r"^\s*\[[A-Za-z][\w.-]{0,24}\] (?=\s|Traceback|File\b|[A-Za-z_.]*(?:Error|Exception)\b)")),
    # timestamps: "2025-03-01 12:34:56,789 ", "[2025-03-01 12:34:56.789] ", "[12:34:56] "
    ("timestamp", re.compile(
        r"^\s*\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]? ?(?:[-|:] ?)?"
    )),
    ("timestamp", re.compile(r"^\s*\[\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\] ?")),
    # logging: "ERROR:root:", "ERROR - ", "root - ERROR - ", "ERROR    | x:y:1 - " (one space is
    # eaten after a separator so that a frame's indented source line keeps its indent)
    ("logging", re.compile(
        r"^\s*(?:[\w.]+\s+-\s+)?\[?(?:ERROR|CRITICAL|WARNING|INFO|DEBUG)\]?(?::[\w.]*:|\s*[-:|] (?:[\w.:]+ - )?)"
    )),
    # GitHub quotes
    ("quote", re.compile(r"^\s*>\s?")),
]
# Cheap first test (most lines have no prefix): only lines that could start with one are tried.
_MAYBE_PREFIX = re.compile(r"^\s*(?:\[|\(|\d{4}-\d\d-|\d\d:\d\d|[\w.]+(?:-[\w.]+)+\s+\||>|[\w.]+\s+-\s|\[?(?:ERROR"
                           r"|CRITICAL|WARNING|INFO|DEBUG)\b)")
# Colab renders frame paths as links and copying keeps them: "[/usr/x/y.py](https://localhost:8080/#) in f()".
_COLAB_LINK = re.compile(r"^(\s*)\[([^\]\n]+)\]\(https?://[^)\s]*\)")
_COMFY_BANNER = re.compile(r"^\s*!!!\s*Exception during processing\s*!!!\s*")
_FENCE = re.compile(r"^\s*```\w*\s*$")


# Chinese input methods type 【】 and ： for [] and : in the same messages. (Not （）: those
# also occur in folder names, which the evidence must keep as they are.)
_FULLWIDTH_CHARS = "【】："
_FULLWIDTH = str.maketrans(_FULLWIDTH_CHARS, "[]:")


def normalise_lines(text: str) -> tuple[list[str], tuple[str, ...]]:
    """Split into lines with colours, log prefixes and code fences removed."""
    if len(text) > MAX_CHARS:
        text = text[-MAX_CHARS:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if any(c in text for c in _FULLWIDTH_CHARS):
        text = text.translate(_FULLWIDTH)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if _BARE_ANSI_HINT.search(text):
        text = _BARE_ANSI.sub("", text)
    wrappers: set[str] = set()
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw[:MAX_LINE].rstrip()
        if "`" in line and _FENCE.match(line):
            continue
        for _ in range(4 if _MAYBE_PREFIX.match(line) else 0):  # prefixes stack, e.g. "[rank0]: 2025-... ERROR - "
            for name, pattern in _PREFIXES:
                stripped = pattern.sub("", line, count=1)
                if stripped != line:
                    # A prefix that leaves an indented line was a quote of an indented line.
                    wrappers.add(name)
                    line = stripped
                    break
            else:
                break
        if "`" in line and line.count("`") <= 2:
            # A paste wrapped in one pair of backticks (inline code): "`  File ...", "... GPU`".
            # (Not diffusers' "`prompt` must be provided": its backticks quote a name.)
            ends = (line[:1] == "`") + (line[-1:] == "`")
            if ends == line.count("`") and len(line) > 1:
                line = line[1:] if line[:1] == "`" else line
                line = line[:-1] if line[-1:] == "`" else line
        if "](" in line and line.lstrip()[:1] == "[":
            line = _COLAB_LINK.sub(r"\1\2", line, count=1)
        if "!!!" in line and _COMFY_BANNER.match(line):
            wrappers.add("comfyui")
            line = _COMFY_BANNER.sub("", line)
        out.append(line.replace("\t", "    "))
    return out, tuple(sorted(wrappers))


# --- line shapes ---------------------------------------------------------------------------

_HEADER = re.compile(r"Traceback \(most recent call last\)")
_IPY_HEADER = re.compile(r"^\s*([A-Za-z_][\w.]*)\s{2,}Traceback \(most recent call last\)")
_CHAIN = re.compile(
    r"During handling of the above exception, another exception occurred"
    r"|The above exception was the direct cause of the following exception"
)
# File "C:\x\y.py", line 12, in decode   |   File "<ipython-input-3-ab>", line 2, in <module>
# (A reporter's "line ~420" keeps its frame.)
_PY_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line ~?(?P<line>\d+)(?:, in (?P<func>.+?))?\s*$')
# IPython 8:  File ~/x/site-packages/diffusers/y.py:673, in WanPipeline.__call__(self, prompt)
_IPY8_FRAME = re.compile(r"^\s*File (?P<path>\S.*?\.py[cw]?):(?P<line>\d+)(?:, in (?P<func>[^(\s]+))?")
#             Cell In[5], line 3      Input In [5], in <cell line: 3>()
_IPY8_CELL = re.compile(r"^\s*(?:Cell In\s?\[(?P<n>\d*)\], line (?P<line>\d+)|Input In \[(?P<n2>\d*)\],"
                        r" in (?P<func>[^\s(]+)(?:\(\))?)")
# IPython 7:  ~/x/site-packages/torch/nn/modules/module.py in _call_impl(self, *input)
_IPY7_FRAME = re.compile(r"^\s*(?P<path>(?:<ipython-input-[^>]+>|\S+\.py[cw]?))\s+in\s+(?P<func>[\w.<>]+)\s*(?:\(|$)")
# A frame line whose start was lost in the paste:  python3.8/site-packages/x/y.py", line 12, in forward
# (also with its opening quote kept, spaces and all:  "C:/Users/J Doe/x.py", line 3147, in load_state)
_CUT_FRAME = re.compile(r'^\s*(?:"(?P<quoted>[^"]+\.py)|(?P<path>[^\s"]+\.py))", line (?P<line>\d+), in (?P<func>\S+)\s*$')
# A line shaped like Python source (a statement, an assignment, a call), not a message or prose.
_CODE_SHAPE = re.compile(r"^(?:return|raise|import|from|if|elif|for|while|with|yield|await|assert|del|try)\b"
                         r"|^[\w.\[\]'\", *]+?(?:=|\()")
_ARROW = re.compile(r"^\s*-*>\s*(?P<line>\d+)\s(?P<code>.*)$")
_CONTEXT = re.compile(r"^\s+\d+\s")
_CARETS = re.compile(r"^\s*[~^\s]+$")
_ELIDED = re.compile(r"^\s*(?:\[\.\.\. skipping|\.\.\.\s*$|\[Previous line repeated)")
# An exception line: "torch.OutOfMemoryError: CUDA out of memory. ..." or "KeyboardInterrupt".
_EXC_NAME = r"(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Fault|Warning|Iteration)"
_EXC_LINE = re.compile(rf"^(?P<type>{_EXC_NAME}|[A-Za-z_][\w.]*\.[A-Za-z_]\w*)(?::\s?(?P<msg>.*))?$")
# Also inside prose or quotes: 'export_to_video raise "NameError: name ...'.
_LOOSE_EXC_LINE = re.compile(rf"(?:^|[\s\"'`(])(?P<type>{_EXC_NAME})(?::\s?(?P<msg>.*))?$")
# ComfyUI's error report (markdown):  - **Exception Type:** torch.OutOfMemoryError
_REPORT_TYPE = re.compile(r"Exception Type:\**\s*(?P<type>\S+)")
_REPORT_MSG = re.compile(r"Exception Message:\**\s*(?P<msg>.*)$")
_USER_PATH = re.compile(r"<ipython-input-|^Cell In\b|^Input In\b|/ipykernel_\d+/|<stdin>|^<string>$|^<cell")


def _frame_from(line: str) -> Frame | None:
    head = line.lstrip()[:8]
    if head.startswith('File "'):
        m = _PY_FRAME.match(line)
        if m:
            return Frame(_path(m["path"]), int(m["line"]), (m["func"] or "<module>").strip())
    elif head.startswith("File "):
        m = _IPY8_FRAME.match(line)
        if m:
            return Frame(_path(m["path"]), int(m["line"]), m["func"] or "<module>")
    elif head.startswith(("Cell In", "Input In")):
        m = _IPY8_CELL.match(line)
        if m:
            n = m["n"] if m["n"] is not None else m["n2"]
            line_no = int(m["line"]) if m["line"] else None
            return Frame(f"Cell In[{n}]", line_no, m["func"] or "<module>")
    elif " in " in line and (".py" in line or "<ipython-input" in line) and not head.startswith("-"):
        m = _IPY7_FRAME.match(line) or (_CUT_FRAME.match(line) if '.py", line ' in line else None)
        if m:
            path = m.groupdict().get("quoted") or m["path"]
            return Frame(_path(path), int(m["line"]) if "line" in m.groupdict() else None, m["func"])
    return None


def _path(path: str) -> str:
    return path.strip().replace("\\\\", "/").replace("\\", "/")


def _exception_from(line: str, *, strict: bool) -> tuple[str, str] | None:
    if not line or line[0].isspace():
        return None
    m = _EXC_LINE.match(line)
    if m is None and not strict:
        m = _LOOSE_EXC_LINE.search(line)
    if m is None:
        return None
    kind = m["type"]
    if "." in kind and not re.search(_EXC_NAME + "$", kind):
        # "diffusers.models.x" is not an exception, "safetensors_rust.SafetensorError" is;
        # a dotted name passes only if its last part looks like a class (CapWords).
        last = kind.rsplit(".", 1)[-1]
        if not (last[:1].isupper() and any(c.islower() for c in last)) or m["msg"] is None:
            return None
    return kind, (m["msg"] or "").strip()


# --- parsing -------------------------------------------------------------------------------


def parse(text: str) -> ParsedText:
    """Read the exceptions and frames out of a pasted traceback or log."""
    lines, wrappers = normalise_lines(text)
    errors: list[ParsedError] = []
    frames: list[Frame] = []
    current: ParsedError | None = None  # the exception whose message is being read
    in_block = False  # inside "Traceback (most recent call last):" before its exception
    message_lines = 0
    wrapper_set = set(wrappers)

    def close() -> None:
        nonlocal current
        if current is not None:
            current.message = current.message.rstrip()
            errors.append(current)
            current = None

    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            if current is not None and not in_block:
                if not current.frames and current.message.strip() and not current.message.rstrip().endswith(":"):
                    # An exception line pasted alone (an issue's first line): what follows a
                    # blank line is the reporter's prose, not the message ("... looking for a
                    # corrupt cached latent" is no corrupt file). A message still to come (empty,
                    # or ending "the following error:") goes on.
                    close()
                else:
                    current.message += "\n"
            continue
        if "Traceback (most" in line:
            close()
            m = _IPY_HEADER.match(line)
            if m or line.strip().startswith("-" * 10):
                wrapper_set.add("ipython")
            frames = []
            in_block = True
            continue
        if "above exception" in line and _CHAIN.search(line):
            close()
            in_block = False
            continue
        frame = _frame_from(line)
        if frame is not None:
            if current is not None and not in_block:
                close()  # frames after an exception start another traceback
                frames = []
            in_block = True
            code = ""
            # The executed source line: the next indented line (plain Python) or the
            # "---->" arrow among IPython's context lines.
            while i < len(lines):
                nxt = lines[i]
                first = nxt.lstrip()[:1]
                arrow = _ARROW.match(nxt) if first == "-" else None
                if arrow:
                    code = arrow["code"].strip()
                    wrapper_set.add("ipython")
                    i += 1
                    continue
                if (first.isdigit() and _CONTEXT.match(nxt)) or (first in "^~" and first and _CARETS.match(nxt)):
                    i += 1
                    continue
                if not code and nxt.startswith(" ") and _frame_from(nxt) is None and "Traceback (most" not in nxt:
                    code = nxt.strip()
                    i += 1
                    continue
                if (not code and first and not line[:1].isspace() and not nxt[:1].isspace()
                        and _CODE_SHAPE.match(nxt) and _frame_from(nxt) is None
                        and _exception_from(nxt, strict=True) is None):
                    # A paste that lost every indentation (frames at the margin, as a forum or an
                    # issue without a code block shows them): the line after a frame is its source.
                    code = nxt.strip()
                    i += 1
                    continue
                break
            frames.append(Frame(frame.path, frame.line, frame.func, code))
            continue
        if ("..." in line or "Previous line" in line) and _ELIDED.match(line):
            continue
        exc = _exception_from(line, strict=True)
        if exc is not None and (in_block or current is None or not current.type):
            close()
            current = ParsedError(type=exc[0], message=exc[1], frames=frames)
            frames = []
            in_block = False
            message_lines = 0
            continue
        if current is not None and not in_block and message_lines < _MAX_MESSAGE_LINES:
            current.message += "\n" + line
            message_lines += 1
    close()

    if not errors:
        # No exception line where Python puts it: a log, a bare message, a report, or a
        # traceback whose last line was cut (or, in older ComfyUI, printed above the frames).
        errors = _loose_errors(lines)
        if not errors:
            # With frames, the indented lines are frames and source: keep the rest.
            body = "\n".join(line for line in lines if line.strip() and "Traceback (most" not in line
                             and not (frames and line[0].isspace()))
            if body or frames:
                errors = [ParsedError(message=body[-4000:])]
        if errors and frames:
            errors[-1].frames = frames
    elif frames and not errors[-1].frames:
        # Frames after the last exception line and no exception after them: the error was
        # printed above its frames (a pasted title line, older ComfyUI); they are its frames.
        errors[-1].frames = frames
    return ParsedText(errors=errors, lines=lines, wrappers=tuple(sorted(wrapper_set)))


def _loose_errors(lines: list[str]) -> list[ParsedError]:
    """Exceptions printed without a traceback: a log line, a report, a bare last line."""
    kind = msg = ""
    for line in lines:
        m = _REPORT_TYPE.search(line)
        if m:
            kind = m["type"].strip("`*")
            continue
        m = _REPORT_MSG.search(line)
        if m:
            msg = m["msg"].strip("`* ")
    if kind:
        return [ParsedError(type=kind, message=msg)]
    found: list[ParsedError] = []
    for idx, line in enumerate(lines):
        exc = _exception_from(line.strip(), strict=False)
        if exc is None or exc[0].endswith("Warning"):
            continue  # warnings are printed beside failures, they are not the failure
        # Keep the lines that follow as the message's continuation (torch's hints, etc.).
        tail = [t for t in lines[idx + 1: idx + 8] if t.strip()]
        found.append(ParsedError(type=exc[0], message="\n".join([exc[1], *tail]).strip()))
    return found[-3:]
