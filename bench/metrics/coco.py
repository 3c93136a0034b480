"""ROUGE-L and CIDEr-D as the coco-caption code computes them (pycocoevalcap), as the E2E scorer
runs it: every text through the Stanford PTB tokenizer 3.4.1 (lowercased, punctuation tokens
removed), then coco's ROUGE-L (LCS F, beta 1.2, best precision and best recall over references
taken separately) and "CIDEr" (CIDEr-D: sigma 6, clipped counts, x10), each a mean of segment
scores. CIDEr's IDF comes from the reference groups of the whole corpus scored.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from bench.metrics import MeanMetric, References
from bench.metrics.java import coco_file, run_jar

_PUNCTUATION = frozenset(PUNCTUATIONS)


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """coco's PTBTokenizer wrapper: one JVM for all texts, one line each."""
    jar = coco_file("tokenizer", "stanford-corenlp-3.4.1.jar")
    args = ["-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines"]
    lines = [text.replace("\r", " ").replace("\n", " ") for text in texts]
    out = run_jar([*args, "-lowerCase"], lines, jar.parent)
    out += [""] * (len(lines) - len(out))  # trailing empty inputs may print nothing
    return [
        " ".join(w for w in line.rstrip().split(" ") if w not in _PUNCTUATION)
        for line in out[: len(lines)]
    ]


def coco_view(
    hypotheses: Sequence[str], references: References
) -> tuple[list[str], list[list[str]]]:
    """Hypotheses and references PTB-tokenized in one JVM, as COCOEvalCap does."""
    flat = [*hypotheses, *(r for refs in references for r in refs)]
    tokens = ptb_tokenize(flat)
    hyps, rest = tokens[: len(hypotheses)], iter(tokens[len(hypotheses) :])
    return hyps, [[next(rest) for _ in refs] for refs in references]


class CocoRougeL(MeanMetric):
    description = "ROUGE-L as coco-caption (LCS F, beta 1.2), mean over inputs, 0-1"
    scale = "0-1"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        rouge = Rouge()
        return [
            float(rouge.calc_score([hyp], list(refs)))
            for hyp, refs in zip(hypotheses, references, strict=True)
        ]


class CiderD(MeanMetric):
    description = "CIDEr-D as coco-caption (IDF from the corpus' references), mean over inputs"
    scale = "0-10"

    def segment_scores(self, hypotheses: Sequence[str], references: References) -> list[float]:
        if not hypotheses:
            return []
        gts = {i: list(refs) for i, refs in enumerate(references)}
        res = {i: [hyp] for i, hyp in enumerate(hypotheses)}
        _, scores = Cider().compute_score(gts, res)
        return [float(s) for s in scores]
