"""De-tokenizers for pre-tokenized benchmarks (WikiText, PTB) and their inverses.

The GPT-2 paper (Sec. 3.1) evaluates on benchmark text after "invertible de-tokenizers" that undo
tokenization artifacts ("spaces before punctuation", WikiText's `@-@`, ...) and normalises perplexity by
the ORIGINAL token count, so the numbers stay comparable with word-level models. OpenAI never released
those de-tokenizers; the ones here follow the rules the paper describes (and the rules common in public
reproductions, e.g. Megatron-LM's), each paired with a re-tokenizer, so that
`retokenize(detokenize(line)) == line` can be checked. That holds for nearly every real line (the tests
measure it on WikiText-2 test and PTB test); the exceptions are lines where the original tokenization is
itself ambiguous (e.g. a word token that ends in a quote character). Invertibility is what makes the
reported per-original-word perplexity meaningful: the model assigns a probability to a string that
determines the original tokens.

All functions work on one line without its newline; `detokenize_*_text` apply them line by line.
"""

from __future__ import annotations

import functools
import re

# ---- WikiText ----

# WikiText splits numbers as "1 @,@ 000 @.@ 5" and hyphenated words as "ice @-@ cream".
_WT_SEPARATORS = {"@-@": "-", "@,@": ",", "@.@": "."}
_WT_OPENERS = ("(", "[")
# Tokens attached to the word before them when detokenized ("word ," -> "word,", "Fu 's" -> "Fu's").
_WT_CLOSERS = frozenset([",", ".", ";", ":", "!", "?", ")", "]", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"])
_WT_HEADING = re.compile(r"^((?:= )+)(.*?)((?: =)+)$")
# A word ending in "." that WikiText keeps whole ("U.S.", "H.", "No.", "vs."): never split off its period.
# (Single letters, dotted words, and common English abbreviations as in Moses' non-breaking prefixes.)
_WT_ABBREVIATION = re.compile(
    r"^(?:.*\..*|[A-Za-z]|No|Nos|St|Sts|Col|Dr|Mr|Mrs|Ms|Messrs|Gen|Bros|Sr|Jr|Co|Inc|Ltd|Corp|Lt|Sgt|Maj"
    r"|Capt|Cpl|Pvt|Adm|Cmdr|Rev|Prof|Hon|Gov|Sen|Rep|Pres|Fr|Mt|Ft|Ave|Blvd|Rd|Jan|Feb|Mar|Apr|Jun|Jul"
    r"|Aug|Sep|Sept|Oct|Nov|Dec|Vol|vol|vs|var|etc|ca|cf|fl|al|pp|ed|eds|op|approx|viz)$"
)


def detokenize_wikitext_line(line: str) -> str:
    """One line of `wiki.*.tokens` / `wiki.*.raw` (without its newline) as ordinary prose.

    Drops the line's leading and trailing space, writes headings "= = Career = =" as "== Career ==",
    rejoins `@-@`, `@,@`, `@.@`, attaches punctuation, closing brackets, contractions and closing quotes
    to the word before, and opening brackets and quotes to the word after. A join is made only where
    `retokenize_wikitext_line` splits it again, which is what makes the mapping invertible.
    """
    if len(line) >= 2 and line.startswith(" ") and line.endswith(" "):
        line = line[1:-1]
    elif line == " ":
        line = ""
    heading = _WT_HEADING.match(line)
    if heading:
        left, title, right = heading.groups()
        return "=" * left.count("=") + " " + _detok_wikitext_body(title) + " " + "=" * right.count("=")
    return _detok_wikitext_body(line)


def _detok_wikitext_body(s: str) -> str:
    tokens = s.split(" ") if s else []
    words: list[tuple[str, tuple[str, ...]]] = []  # (surface form, the original tokens it stands for)
    quote_open = False
    glue_next = False  # the previous token opens a bracket or quote
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _WT_SEPARATORS and words and i + 1 < len(tokens):
            surface, toks = words[-1]
            joined = surface + _WT_SEPARATORS[tok] + tokens[i + 1]
            if _wt_split_word(joined) == (*toks, tok, tokens[i + 1]):
                words[-1] = (joined, (*toks, tok, tokens[i + 1]))
                i += 2
                glue_next = False
                continue
        attach, opens = glue_next, False
        if tok == '"':
            attach, opens = attach or quote_open, not quote_open
            quote_open = not quote_open
        elif tok in _WT_OPENERS:
            opens = True
        elif tok in _WT_CLOSERS:
            attach = True
        if attach and words and _wt_split_word(words[-1][0] + tok) == (*words[-1][1], tok):
            words[-1] = (words[-1][0] + tok, (*words[-1][1], tok))
        else:
            words.append((tok, (tok,)))
        glue_next = opens
        i += 1
    return " ".join(surface for surface, _ in words)


def _split_period(m: re.Match) -> str:
    stem = m.group(1)
    return m.group(0) if _WT_ABBREVIATION.match(stem.rsplit(" ", 1)[-1]) else f"{stem} ."


_WT_SPLIT_RULES = [
    (re.compile(r"(?<=\S)-(?=\S)"), " @-@ "),
    # "," and "." are separators only inside numbers (digits, or <unk> standing for some of them).
    (re.compile(r"(?:(?<=\d)|(?<=<unk>))([,.])(?=\d|<unk>)"), r" @\1@ "),
    (re.compile(r"(?<!\S)([(\[])(?=\S)"), r"\1 "),  # opening brackets
    (re.compile(r'(?<!\S)"(?=\S)'), '" '),  # opening quote
    (re.compile(r'(?<=\S)([)\]"])'), r" \1"),  # closing brackets and quotes
    (re.compile(r"""(?<=\S)('s|'t|'re|'ve|'m|'ll|'d)(?=$|\s|[,.;:!?)\]"])"""), r" \1"),
    (re.compile(r"(?<=\S)([,;:!?])(?=$|\s)"), r" \1"),
    (re.compile(r"(\S*[^\s.])\.(?=$|\s)"), _split_period),
]
_WT_PLAIN = re.compile(r"[^-,.;:!?'\"()\[\]]*")


@functools.lru_cache(maxsize=1 << 16)
def _wt_split_word(word: str) -> tuple[str, ...]:
    """The WikiText tokens of one space-free word of detokenized text."""
    if _WT_PLAIN.fullmatch(word):
        return (word,)
    for pattern, replacement in _WT_SPLIT_RULES:
        word = pattern.sub(replacement, word)
    return tuple(tok for tok in word.split(" ") if tok)  # " " only: WikiText keeps e.g. U+00A0 inside tokens


def retokenize_wikitext_line(line: str) -> str:
    """Inverse of `detokenize_wikitext_line`."""
    heading = re.match(r"^(=+) (.*) (=+)$", line)
    if heading:
        left, title, right = heading.groups()
        body = " ".join(tok for word in title.split(" ") for tok in _wt_split_word(word))
        return f" {' '.join(left)} {body} {' '.join(right)} "
    if not line:
        return " "
    return " " + " ".join(tok for word in line.split(" ") for tok in _wt_split_word(word)) + " "


def detokenize_wikitext(text: str) -> str:
    return "\n".join(detokenize_wikitext_line(line) for line in text.split("\n"))


# ---- Penn Treebank (Mikolov's lower-cased, punctuation-free split) ----

_PTB_CONTRACTIONS = ("'s", "n't", "'re", "'ve", "'m", "'ll", "'d")


def detokenize_ptb_line(line: str) -> str:
    """One line of `ptb.*.txt` (without newline) with contractions re-attached and `N` written as a number.

    `<unk>` stays as it is: any replacement word could also occur in the text, which would break
    invertibility. `N` (every number in this split) becomes `1`, which never occurs as a token of its own.
    """
    tokens = line.split()
    out: list[str] = []
    for tok in tokens:
        if out and (tok in _PTB_CONTRACTIONS or (tok == "'" and out[-1].endswith("s"))):
            out[-1] += tok
        else:
            out.append("1" if tok == "N" else tok)
    return " ".join(out)


def retokenize_ptb_line(line: str) -> str:
    """Inverse of `detokenize_ptb_line` (PTB lines start and end with one space)."""
    if not line:
        return " "
    tokens = []
    for word in line.split(" "):
        m = re.fullmatch(r"(.+?)(n't|'s|'re|'ve|'m|'ll|'d|(?<=s)')", word)
        tokens.extend(m.groups() if m else [word])
    return " " + " ".join("N" if tok == "1" else tok for tok in tokens) + " "


def detokenize_ptb(text: str) -> str:
    return "\n".join(detokenize_ptb_line(line) for line in text.split("\n"))


# ---- Children's Book Test (tokenized Project Gutenberg text with `` '' quotes) ----

def detokenize_cbt_line(line: str) -> str:
    """Undo CBT's tokenization (`` '' quotes, spaces before punctuation and contractions). Unlike the
    WikiText and PTB mappings this one is not checked for invertibility: CBT is scored by accuracy, so
    nothing is normalised by the original token count."""
    s = f" {' '.join(line.split())} "
    s = re.sub(r" (n't|'s|'re|'ve|'m|'ll|'d)(?= )", r"\1", s)
    s = re.sub(r" ([,.;:!?)\]]+)(?= )", r"\1", s)
    s = re.sub(r" ([(\[]) ", r" \1", s)
    # Closing quotes join the word before, opening quotes the word after.
    s = s.replace(" ''", '"').replace("`` ", '"')
    return " ".join(s.split(" ")).strip()
