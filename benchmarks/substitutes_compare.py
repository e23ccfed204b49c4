"""Compare substitute providers for BERT masking on MBPP prompts (default: the first 100).

For every alphabetic word that WordNet knows, each provider proposes a replacement; we report
the share of words it changed, the share of replacements that keep a part of speech of the
original (by WordNet), and the shares that WordNet lists as synonyms and as antonyms.
(The wordnet provider draws from WordNet's synonyms, so its synonym share is 1 by construction.)

Then, over *every* word of the scored scope of all HumanEval prompts and those MBPP prompts
(numbers and identifiers included), how each provider's substitute came about — by the provider,
as another number, part by part for identifiers, by the embedding fallback — and the share left
unchanged, with those words named (it must be 0% or each exception named).

    CODEFOCUS_DATA=../shared/data python benchmarks/substitutes_compare.py [--prompts 100]
        [--codemodel]   # also the code-model re-ranker (slow on CPU: loads the default model)
"""

from __future__ import annotations

import argparse
import re
import time

from codefocus.data.tasks import load_tasks
from codefocus.data.units import scoped_word_spans, word_spans
from codefocus.data.wordnet import load_wordnet
from codefocus.methods.substitutes import (
    EmbeddingNeighbours,
    get_provider,
    substitution_report,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--codemodel", action="store_true")
    args = parser.parse_args()
    wordnet = load_wordnet()
    if wordnet is None:
        raise SystemExit("WordNet is needed: apt-get install wordnet-base")
    tasks = load_tasks("mbpp", with_labels=False)[: args.prompts]
    providers = {
        "embedding": get_provider("embedding"),
        "embedding-without-antonym-filter": EmbeddingNeighbours(avoid_antonyms=False),
        "wordnet": get_provider("wordnet"),
    }
    if args.codemodel:
        from codefocus.models.loading import load_model

        providers["codemodel"] = get_provider("codemodel", load_model("default"))
    items = [
        (task.prompt, span)
        for task in tasks
        for span in word_spans(task.prompt)
        if re.fullmatch(r"[A-Za-z]+", task.prompt[span.start : span.end])
        and wordnet.parts_of_speech(task.prompt[span.start : span.end])
    ]
    print(f"{len(tasks)} MBPP prompts, {len(items)} words known to WordNet")
    for name, provider in providers.items():
        start = time.perf_counter()
        changed = keeps_pos = synonym = antonym = 0
        for text, span in items:
            word = text[span.start : span.end]
            new = provider.substitute(text, span)
            if new.lower() == word.lower():
                continue
            changed += 1
            if wordnet.parts_of_speech(word) & wordnet.parts_of_speech(new):
                keeps_pos += 1
            if new.lower() in {s.lower() for s in wordnet.synonyms(word)}:
                synonym += 1
            antonyms = wordnet.antonyms(word)
            lemmas = {lemma for pos in "nvar" for lemma in wordnet.lemmas(new, pos)}
            if new.lower() in antonyms or lemmas & antonyms:
                antonym += 1
        seconds = time.perf_counter() - start
        share = max(changed, 1)
        print(
            f"provider {name}: changed {changed / len(items):.3f}, keeps part of speech "
            f"{keeps_pos / share:.3f}, synonym {synonym / share:.3f}, "
            f"antonym {antonym / share:.3f}, {seconds:.1f} s"
        )
    every = [
        (task.prompt, scoped_word_spans(task.prompt))
        for task in load_tasks("humaneval", with_labels=False) + tasks
    ]
    total = sum(len(spans) for _, spans in every)
    print(f"every scored word of 164 HumanEval + {len(tasks)} MBPP prompts: {total} words")
    for name, provider in providers.items():
        if name.endswith("filter"):
            continue
        report = substitution_report(provider, every)
        shares = ", ".join(f"{how} {report.share(how):.3f}" for how in sorted(report.counts))
        named = ", ".join(f"{w!r} x{n}" for w, n in report.unchanged.most_common())
        print(f"provider {name}: {shares}; unchanged: {named or 'none'}")


if __name__ == "__main__":
    main()
