"""Fit the header text coder's frozen prior (``.tae`` format 8).

    python benchmarks/fit_text_prior.py [--out runs/text_prior.npz]

:mod:`topoae.codec.text_coder` codes a header's free text (a grid's title, source, history)
with byte frequencies learned from generic English technical prose: the docstrings of this
Python's standard library (never a grid's attributes, so the prior says nothing about the
benchmark's files). It writes the byte counts (``unigram``, scaled to
:data:`~topoae.codec.text_coder.UNIGRAM_TOTAL`, at least 1) and the counts of each byte after
each byte (``bigram``, each row scaled to :data:`~topoae.codec.text_coder.BIGRAM_ROW`) to
``--out``. Shipped as ``topoae/assets/text_prior.npz`` (its arrays' SHA-256 in
``text_coder.PRIOR_SHA256``), it is frozen: other counts are a new format.
It prints the bits per byte of the model on every tenth 150-byte piece of the corpus, which
the fit does not see.
"""

from __future__ import annotations

import argparse
import ast
import math
import sysconfig
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def corpus() -> bytes:
    std = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for p in sorted(std.glob("*.py")):
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d:
                    docs.append(d)
    return "\n".join(docs).encode("utf-8")


def main() -> None:
    import sys

    sys.path.insert(0, str(REPO))
    from topoae.codec import text_coder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "text_prior.npz")
    a = ap.parse_args()
    text = corpus()
    pieces = [text[i:i + 150] for i in range(0, len(text), 150)]
    fit = np.frombuffer(b"".join(p for i, p in enumerate(pieces) if i % 10), np.uint8).astype(np.int64)
    uni = np.bincount(fit, minlength=256).astype(np.float64)
    unigram = np.maximum(1, np.round(uni / uni.sum() * text_coder.UNIGRAM_TOTAL)).astype(np.uint16)
    big = np.zeros((256, 256), dtype=np.float64)
    np.add.at(big, (fit[:-1], fit[1:]), 1)
    bigram = np.round(big / np.maximum(big.sum(1, keepdims=True), 1) * text_coder.BIGRAM_ROW).astype(np.uint16)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, unigram=unigram, bigram=bigram)
    held = [p for i, p in enumerate(pieces) if i % 10 == 0]
    bits = sum(8 * len(text_coder.encode(p, counts=(unigram, bigram))) for p in held[::20])
    n = sum(len(p) for p in held[::20])
    print(f"{len(text):,} bytes of docstrings; held-out pieces: {bits / n:.3f} bits a byte "
          f"(whole range-coded words); digest {text_coder.digest(unigram, bigram)}")
    assert math.isfinite(bits)


if __name__ == "__main__":
    main()
