"""A command that a fact sends as one line, laid out as a script for people
to read (docs/survey-*.sh), and the shellcheck notes that go with it.

Only spaces become line breaks, and only where a newline means what the space
did: after a separator (; & && || | ;;), after do, then, else, { and ( and
before their closing words, inside the command's own substitutions $(...)
and inside a script handed to a shell in single quotes (sh -c '...'), where
a newline ends a command as the space after its ; did. Nothing else is
touched, so the laid-out script, with its indentation and comment lines
taken out and its lines joined by one space each, is the command again
(one_line). Pure: no host, no shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

WIDTH = 100
INDENT = "  "


class ShellNote(NamedTuple):
    """A shellcheck finding that stands, and why: the laid-out script puts
    `# shellcheck disable=CODE # WHY` before the command that holds each
    match of `at` (a regular expression over the command's text)."""

    code: str
    at: str
    why: str


# --- the parse: just enough of POSIX sh's grammar to know where lines may break ---


@dataclass
class _Script:
    """A list of commands; `items` are and-or lists, each ending after its
    separator (; or &) when it has one. `quoted`: a script in single
    quotes (sh -c '...'), where no comment may go."""

    start: int
    end: int
    items: list[_AndOr]
    quoted: bool = False


@dataclass
class _AndOr:
    """Commands joined by && || |; `ops[i]`: the offset just after the
    operator between parts[i] and parts[i + 1]."""

    start: int
    end: int
    parts: list[_Command]
    ops: list[int]


@dataclass
class _Clause:
    """A compound command's body between the space after its opening word
    (do, then, else, {, () and the space before its closing one."""

    body: _Script
    open_space: int
    close_space: int


@dataclass
class _Arm:
    """One `pattern) commands;;` of a case."""

    start: int
    end: int
    body: _Script
    body_space: int


@dataclass
class _Command:
    kind: str  # simple, group, loop, if, case, function
    start: int
    end: int
    nested: list[_Script] = field(default_factory=list)  # simple: its $(...) and sh -c '...' scripts
    clauses: list[_Clause] = field(default_factory=list)
    arms: list[_Arm] = field(default_factory=list)
    case_spaces: tuple[int, int] = (-1, -1)  # case: the spaces after `in` and before `esac`
    body: _Command | None = None  # function: its body


_OPERATORS = (";;", "&&", "||", ";", "&", "|", "(", ")")
_REDIRECTION = re.compile(r"\d*(?:<>|>>|<&|>&|[<>])")
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\(\) ")


class _Parser:
    def __init__(self, text: str, start: int = 0, end: int | None = None) -> None:
        self.s = text
        self.i = start
        self.n = len(text) if end is None else end

    def fail(self, what: str) -> ValueError:
        return ValueError(f"cannot lay out the command: {what} at offset {self.i}: {self.s[self.i:self.i + 60]!r}")

    def spaces(self) -> None:
        while self.i < self.n and self.s[self.i] == " ":
            self.i += 1

    def operator(self) -> str | None:
        return next((op for op in _OPERATORS if self.s.startswith(op, self.i) and self.i + len(op) <= self.n), None)

    def keyword(self, *words: str) -> str | None:
        for word in words:
            end = self.i + len(word)
            if self.s.startswith(word, self.i) and end <= self.n and (end == self.n or self.s[end] in " ;&|)"):
                return word
        return None

    def expect(self, word: str) -> None:
        self.spaces()
        if not self.keyword(word) and self.operator() != word:
            raise self.fail(f"expected {word!r}")
        self.i += len(word)

    def space_before(self) -> int:
        """The offset of the space just before here (-1: none)."""
        return self.i - 1 if self.i > 0 and self.s[self.i - 1] == " " else -1

    def space_after(self) -> int:
        return self.i if self.i < self.n and self.s[self.i] == " " else -1

    def script(self, stop_words: tuple[str, ...] = (), stop_operators: tuple[str, ...] = ()) -> _Script:
        self.spaces()
        start, items = self.i, []
        while True:
            self.spaces()
            if self.i >= self.n or self.keyword(*stop_words) or self.operator() in stop_operators:
                break
            item = self.and_or()
            self.spaces()
            if self.operator() in (";", "&"):
                self.i += 1
                item.end = self.i
            items.append(item)
        return _Script(start, self.i, items)

    def and_or(self) -> _AndOr:
        start, parts, ops = self.i, [self.command()], []
        while True:
            back = self.i
            self.spaces()
            op = self.operator()
            if op not in ("&&", "||", "|"):
                self.i = back
                return _AndOr(start, self.i, parts, ops)
            self.i += len(op)
            ops.append(self.i)
            self.spaces()
            parts.append(self.command())

    def command(self) -> _Command:
        start = self.i
        if self.keyword("!"):
            self.i += 1
            self.spaces()
        if self.keyword("{") or self.operator() == "(":
            closing = "}" if self.s[self.i] == "{" else ")"
            self.i += 1
            opened = self.space_after()
            body = self.script(stop_words=("}",)) if closing == "}" else self.script(stop_operators=(")",))
            clause = _Clause(body, opened, self.space_before())
            self.expect(closing)
            return self.redirected(_Command("group", start, self.i, clauses=[clause]))
        if self.keyword("for"):
            self.i += 3
            self.words()  # NAME [in WORDS]: up to the ;
            self.expect(";")
            return self.loop(start)
        if self.keyword("while", "until"):
            self.i += 5
            self.script(stop_words=("do",))
            return self.loop(start)
        if self.keyword("if"):
            return self.conditional(start)
        if self.keyword("case"):
            return self.case(start)
        function = _FUNCTION.match(self.s, self.i, self.n)
        if function:
            self.i = function.end()
            self.spaces()
            body = self.command()
            return _Command("function", start, self.i, body=body)
        nested = self.words()
        if self.i == start:
            raise self.fail("expected a command")
        return _Command("simple", start, self.i, nested=nested)

    def loop(self, start: int) -> _Command:
        self.expect("do")
        opened = self.space_after()
        body = self.script(stop_words=("done",))
        clause = _Clause(body, opened, self.space_before())
        self.expect("done")
        return self.redirected(_Command("loop", start, self.i, clauses=[clause]))

    def conditional(self, start: int) -> _Command:
        clauses = []
        self.i += 2
        while True:
            self.script(stop_words=("then",))
            self.expect("then")
            opened = self.space_after()
            body = self.script(stop_words=("elif", "else", "fi"))
            clauses.append(_Clause(body, opened, self.space_before()))
            if self.keyword("elif"):
                self.i += 4
                continue
            if self.keyword("else"):
                self.i += 4
                opened = self.space_after()
                body = self.script(stop_words=("fi",))
                clauses.append(_Clause(body, opened, self.space_before()))
            self.expect("fi")
            return self.redirected(_Command("if", start, self.i, clauses=clauses))

    def case(self, start: int) -> _Command:
        self.i += 4
        self.spaces()
        self.word()
        self.expect("in")
        after_in, arms = self.space_after(), []
        while True:
            self.spaces()
            if self.keyword("esac"):
                break
            arm_start = self.i
            self.pattern()
            body_space = self.space_after()
            body = self.script(stop_words=("esac",), stop_operators=(";;",))
            self.spaces()
            if self.operator() == ";;":
                self.i += 2
            arms.append(_Arm(arm_start, self.i, body, body_space))
        before_esac = self.space_before()
        self.expect("esac")
        command = _Command("case", start, self.i, arms=arms, case_spaces=(after_in, before_esac))
        return self.redirected(command)

    def pattern(self) -> None:
        """A case pattern and its `)`: | in it is part of the pattern."""
        while self.i < self.n and self.s[self.i] != ")":
            self.i = self.quoted(self.i) if self.s[self.i] in "'\"\\" else self.i + 1
        self.expect(")")

    def redirected(self, command: _Command) -> _Command:
        while True:
            back = self.i
            self.spaces()
            if not _REDIRECTION.match(self.s, self.i):
                self.i = back
                command.end = self.i
                return command
            operator = self.i
            self.word()
            if _REDIRECTION.fullmatch(self.s, operator, self.i):  # `< FILE`: the file is the next word
                self.spaces()
                self.word()

    def words(self) -> list[_Script]:
        nested: list[_Script] = []
        while True:
            back = self.i
            self.spaces()
            if self.i >= self.n or self.operator():
                self.i = back
                return nested
            previous = self.s[max(0, back - 3):back]
            nested += self.word(after_c=previous == " -c")

    def word(self, after_c: bool = False) -> list[_Script]:
        """One word; its unquoted $(...) scripts, and the script it is if it
        is one single-quoted string after -c (a shell's script)."""
        start, nested = self.i, []
        while self.i < self.n:
            c = self.s[self.i]
            if c in " ;|)":
                break
            if c == "&" and self.s[self.i - 1:self.i] not in (">", "<"):
                break
            if c == "#" and self.i == start:
                raise self.fail("a comment")
            if c == "(":
                raise self.fail("a ( inside a word")
            if c == "'" and after_c and self.i == start:
                end = self.s.index("'", self.i + 1)
                inner = _Parser(self.s, self.i + 1, end).script()
                inner.quoted = True
                nested.append(inner)
                self.i = end + 1
            elif c == "$" and self.s.startswith("$(", self.i) and not self.s.startswith("$((", self.i):
                self.i += 2
                nested.append(self.script(stop_operators=(")",)))
                self.expect(")")
            elif c in "'\"\\$`":
                self.i = self.quoted(self.i)
            else:
                self.i += 1
        return nested

    def quoted(self, i: int) -> int:
        """The end of the quoted or expanded piece at i: '...', "...", \\x,
        ${...}, $((...)), $(...) inside double quotes (no line breaks in
        any of them)."""
        s = self.s
        if s[i] == "`":
            raise self.fail("a backquote")
        if s[i] == "\\":
            return i + 2
        if s[i] == "'":
            return s.index("'", i + 1) + 1
        if s.startswith("$((", i):
            depth, i = 2, i + 3
            while depth:
                depth += {"(": 1, ")": -1}.get(s[i], 0)
                i += 1
            return i
        if s.startswith("$(", i):
            inner = _Parser(s, i + 2, self.n)
            inner.script(stop_operators=(")",))
            inner.expect(")")
            return inner.i
        if s.startswith("${", i):
            i += 2
            while s[i] != "}":
                i = self.quoted(i) if s[i] in "'\"\\$" else i + 1
            return i + 1
        if s[i] == "$":
            return i + 1
        i += 1  # a double quote
        while s[i] != '"':
            i = self.quoted(i) if s[i] in "\\$`" else i + 1
        return i + 1


def _parse(command: str) -> _Script:
    parser = _Parser(command)
    script = parser.script()
    if parser.i != len(command):
        raise parser.fail("unparsed text")
    return script


# --- the layout: which spaces become line breaks ---


@dataclass
class _Line:
    depth: int
    # A command begins this line, outside any $(...) or quoted script (a
    # comment may go before it), and ends at this offset; -1: none does.
    until: int = -1


class _Layout:
    """Greedy: a command that fits in what is left of its line stays on
    it; one that does not is opened up (its body one command a line, a
    level deeper), and an and-or list breaks after an operator before a
    simple command that does not fit."""

    def __init__(self, command: str, width: int) -> None:
        self.s, self.width = command, width
        self.pos, self.column = 0, 0  # where the current line's text starts, and its column
        self.lines: dict[int, _Line] = {}  # the offset of each line's first character
        self.nested = 0  # inside how many $(...) and quoted scripts

    def fits(self, end: int) -> bool:
        """Whether the text from here to `end` fits on the current line."""
        return self.column + (end - self.pos) <= self.width

    def newline(self, space: int, depth: int, until: int = -1) -> None:
        """A line break for the space at `space`, where it is one space."""
        s = self.s
        if space < self.pos or s[space:space + 1] != " " or s[space - 1] == " " or s[space + 1:space + 2] in (" ", ""):
            return
        self.lines[space + 1] = _Line(depth, until if self.nested == 0 else -1)
        self.pos, self.column = space + 1, len(INDENT) * depth

    def script(self, script: _Script, depth: int) -> None:
        """A list's commands, each on a line of its own but the first,
        which the caller placed."""
        for k, item in enumerate(script.items):
            if k > 0:
                self.newline(item.start - 1, depth, item.end)
            self.and_or(item, depth)

    def body(self, body: _Script, open_space: int, close_space: int, depth: int) -> None:
        self.newline(open_space, depth + 1, body.items[0].end if body.items else -1)
        self.script(body, depth + 1)
        self.newline(close_space, depth)

    def and_or(self, item: _AndOr, depth: int) -> None:
        if self.fits(item.end):
            return
        here = depth
        for k, part in enumerate(item.parts):
            # A compound command that fits on a line of its own goes there;
            # a longer one is opened up where it starts.
            fits_alone = len(INDENT) * (depth + 1) + part.end - part.start <= self.width
            if k > 0 and not self.fits(part.end) and (part.kind == "simple" or fits_alone):
                here = depth + 1
                self.newline(item.ops[k - 1], here)
            self.command(part, here)

    def command(self, command: _Command, depth: int) -> None:
        if self.fits(command.end):
            return
        if command.kind == "function":
            assert command.body is not None
            self.command(command.body, depth)
        elif command.kind == "simple":
            for script in command.nested:
                if not self.fits(script.end):
                    # Its first command goes on after $( or -c ': the
                    # lines of a list of several are a level deeper.
                    self.nested += 1
                    self.script(script, depth + (len(script.items) > 1))
                    self.nested -= 1
        elif command.kind == "case":
            after_in, before_esac = command.case_spaces
            for k, arm in enumerate(command.arms):
                self.newline(arm.start - 1 if k else after_in, depth + 1)
                if not self.fits(arm.end):
                    self.newline(arm.body_space, depth + 2, arm.body.items[0].end if arm.body.items else -1)
                    self.script(arm.body, depth + 2)
            self.newline(before_esac, depth)
        elif (inner := self.hugged(command)) is not None:
            self.command(inner, depth)
        else:
            for clause in command.clauses:
                self.body(clause.body, clause.open_space, clause.close_space, depth)

    @staticmethod
    def hugged(command: _Command) -> _Command | None:
        """`{ (` ... `) ...; }`: a group whose body is one group keeps both
        on the same lines, its body indented once."""
        if command.kind != "group" or len(command.clauses[0].body.items) != 1:
            return None
        item = command.clauses[0].body.items[0]
        return item.parts[0] if len(item.parts) == 1 and item.parts[0].kind == "group" else None


class ScriptLine(NamedTuple):
    depth: int
    text: str
    # A command begins here, outside any $(...) or quoted script, and ends
    # at offset `until` of the command (-1: no comment may go before it).
    start: int
    until: int


def laid_out(command: str, width: int = WIDTH) -> list[ScriptLine]:
    """The command's lines, each with its depth of indentation."""
    layout = _Layout(command, width)
    script = _parse(command)
    layout.lines[0] = _Line(0, script.items[0].end if script.items else -1)
    layout.script(script, 0)
    starts = sorted(layout.lines)
    ends = [*(start - 1 for start in starts[1:]), len(command)]
    return [
        ScriptLine(layout.lines[start].depth, command[start:end], start, layout.lines[start].until)
        for start, end in zip(starts, ends, strict=True)
    ]


def as_script(command: str, notes: tuple[ShellNote, ...] | list[ShellNote] = (), width: int = WIDTH) -> list[str]:
    """The command laid out (laid_out), each note's directive and reason
    before the command that holds a match of it: the innermost command that
    begins a line outside any $(...) or quoted script."""
    lines = laid_out(command, width)
    before: dict[int, list[ShellNote]] = {}
    for note in notes:
        for match in re.finditer(note.at, command):
            holders = [k for k, line in enumerate(lines) if line.start <= match.start() < line.until]
            if not holders:
                raise ValueError(f"no line to put {note.code} before: {note.at!r}")
            chosen = before.setdefault(max(holders, key=lambda k: lines[k].start), [])
            if note not in chosen:
                chosen.append(note)
    out = []
    for k, line in enumerate(lines):
        for note in before.get(k, []):
            out.append(f"{INDENT * line.depth}# shellcheck disable={note.code} # {note.why}")
        out.append(INDENT * line.depth + line.text)
    return out


def one_line(script: str) -> str:
    """A laid-out script's command: its comment lines (and #! line) left
    out, each line's indentation taken off, the lines joined by a space."""
    lines = [line.strip(" ") for line in script.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("#"))
