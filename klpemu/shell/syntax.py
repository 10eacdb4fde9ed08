"""The shell's grammar: commands split on `;` and newlines, words with sh's quoting, and
pipelines into the built-in filters. What sh would do but this shell does not is refused by
name rather than passed on as words."""

from __future__ import annotations

from dataclasses import dataclass, field

# Longest first, so that `||` is not read as two pipes.
OPERATORS = ("$(", "&&", "||", ">>", "|", "&", ">", "<", "`", "(", ")")


class SyntaxProblem(Exception):
    """A line this shell will not run; sh's exit status for it (2 for a syntax error)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


@dataclass
class Stage:
    """One command of a pipeline: its words, and an output redirection (`>` or `>>`, target)."""

    argv: list[str] = field(default_factory=list)
    redirect: tuple[str, str] | None = None


def split_commands(text: str) -> list[str]:
    """Split a script on newlines and on `;` outside quotes; drop comments."""
    out, cur, quote = [], [], None
    escaped = False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                escaped = True
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch in ";\n":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [c.strip() for c in out if c.strip() and not c.strip().startswith("#")]


def tokenize(cmd: str) -> list[tuple[str, bool]]:
    """Words and operators as (text, is_operator); quotes and backslashes make operator
    characters plain text, as in sh."""
    tokens: list[tuple[str, bool]] = []
    word: list[str] = []
    in_word = False
    i, n = 0, len(cmd)
    while i < n:
        ch = cmd[i]
        if ch in " \t":
            if in_word:
                tokens.append(("".join(word), False))
                word, in_word = [], False
            i += 1
        elif ch == "\\":
            if i + 1 < n:
                word.append(cmd[i + 1])
            in_word = True
            i += 2
        elif ch == "'":
            end = cmd.find("'", i + 1)
            if end < 0:
                raise SyntaxProblem("klpemu: syntax error: unterminated quoted string")
            word.append(cmd[i + 1 : end])
            in_word = True
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and cmd[i] != '"':
                if cmd[i] == "\\" and i + 1 < n and cmd[i + 1] in '"\\$`':
                    i += 1
                elif cmd[i] == "`" or cmd.startswith("$(", i):
                    raise SyntaxProblem(
                        f"klpemu: {'`' if cmd[i] == '`' else '$('}: command substitution is not supported"
                    )
                word.append(cmd[i])
                i += 1
            if i >= n:
                raise SyntaxProblem("klpemu: syntax error: unterminated quoted string")
            in_word = True
            i += 1
        else:
            op = next((o for o in OPERATORS if cmd.startswith(o, i)), None)
            if op is None:
                word.append(ch)
                in_word = True
                i += 1
                continue
            if in_word:
                tokens.append(("".join(word), False))
                word, in_word = [], False
            tokens.append((op, True))
            i += len(op)
    if in_word:
        tokens.append(("".join(word), False))
    return tokens


UNSUPPORTED = {
    "&&": "'&&': command lists are not supported (use ';')",
    "||": "'||': command lists are not supported (use ';')",
    "&": "'&': background jobs are not supported",
    "`": "`: command substitution is not supported",
    "$(": "$(: command substitution is not supported",
    "<": "'<': input redirection is not supported",
    "(": "'(': subshells are not supported",
    ")": "syntax error near unexpected token `)'",
}


def parse_pipeline(cmd: str) -> list[Stage]:
    """The stages of one command; raises SyntaxProblem for what this shell does not do."""
    stages = [Stage()]
    tokens = tokenize(cmd)
    i = 0
    while i < len(tokens):
        text, is_op = tokens[i]
        i += 1
        if not is_op:
            stages[-1].argv.append(text)
        elif text == "|":
            if not stages[-1].argv:
                raise SyntaxProblem("klpemu: syntax error near unexpected token `|'")
            stages.append(Stage())
        elif text in (">", ">>"):
            if i >= len(tokens) or tokens[i][1]:
                near = tokens[i][0] if i < len(tokens) else "newline"
                raise SyntaxProblem(f"klpemu: syntax error near unexpected token `{near}'")
            stages[-1].redirect = (text, tokens[i][0])
            i += 1
        else:
            raise SyntaxProblem(f"klpemu: {UNSUPPORTED[text]}")
    if not stages[-1].argv and len(stages) > 1:
        raise SyntaxProblem("klpemu: syntax error: a pipe with no command after it")
    return stages
