"""Gate 0: does the candidate's tokenizer keep its tool-call format intact?

The check reads what the model's own chat template emits for a tool
conversation and looks each format marker up in the vocabulary. It never
probes a marker by encoding its text: Mistral's own backend splits
"[TOOL_CALLS]" typed as text on purpose (text must not inject control tokens),
so that probe calls every marker multi-token, a false NO-GO. The seed plan's
`[/TOOL_CALLS]` is reported the way Punie's tracker did, but Devstral's format
never emits it (a call ends at `</s>`), so it fails nothing by itself.

Where each part lives: `vocabulary` (marker ids, control ids, the format family),
`markers` (the canonical conversation and the marker judgment), `split_markers`
(marker text inside training data), `reference` (mistral-common's encoder for the
candidate's vocabulary), `parity` (each rendering path against it), `round_trip`
(ids back to text) and `tool_parsing` (the parser mlx_lm.server picks).

Only tokenizer files are read, never weights: a folder holding just the
tokenizer passes Gate 0 when its tokenizer is right.

Parity is judged against an independent reference: mistral-common's encoder for
the candidate's own vocabulary (`build_reference`: its tekken.json, else a tekken
reference built from its tokenizer.json with tekken's own split pattern; none
buildable is a failure, never "not applicable"). When tekken.json ships, mlx-lm
loads MistralCommonBackend, which is that same encoder, so its agreement proves
little (`Reference.independent` says so); the folder's chat template is then what
the tokenizers backend (LM Studio, llama.cpp, transformers) renders with, and is
compared as its own path: a difference there is a flag, a difference on mlx-lm's
path a failure.

Ids back to text (`check_served_round_trip`): tokenizer.decode and mlx-lm's streaming
detokenizer must give every probe text and every assistant turn of the training data
back exactly (leading spaces dropped at the start of a reply are mlx-lm's convention),
measured on the path production serves: the serving probe, run by the serving
interpreter (production's with --serve-python, else ours with mistral-common hidden) on
the folder the serving plan serves, loads the tokenizer as mlx_lm.server does there and
streams each text. That measurement decides. The same measurement on the tokenizer the
suite loads in its own process (`check_round_trip`; MistralCommonBackend when tekken.json
ships, since mistral-common is installed here) is reported beside it and flags nothing
when it is not what is served: there mlx-lm's BPEStreamingDetokenizer reads
mistral-common's pieces as byte-level ones, so a character spanning several tokens
streams as U+FFFD and one ending a reply makes it raise (45 of Phase 27's 1,547
assistant turns, Punie's ✓ and ✗), a defect of mlx-lm wherever
mistral-common is installed, not of the served path (mlx-lm alone loads
TokenizersBackend for the same folder and streams exactly). On the served path, damage
confined to characters spanning several tokens (U+FFFD, or raising at the end of one) is
a flag with its count, not a failure: decode is exact, training and the scorer's reading
of calls are unaffected, ASCII text streams exactly. Any other difference (spaces,
newlines, a missing ByteLevel decoder printing Ġ and Ċ) fails Gate 0: every reply would
be corrupted and Gate 1 would blame the model.
Likewise `tool_parsing_of` records the tool parser mlx_lm.server would pick; none
(MistralCommonBackend has no chat template to pick one from) is a flag: Gate 0
judges tokenization, and the fix is in how the model is served.
"""

from punie_gates.checks.tokenizer.markers import Gate0Report, MarkerReport, canonical_conversation, inspect_tokenizer
from punie_gates.checks.tokenizer.parity import (
    Expectations,
    ParityReport,
    check_parity,
    compare_path,
    expectations,
    mlx_path_name,
    serving_prompts,
)
from punie_gates.checks.tokenizer.reference import Reference, ReferenceUnavailable, build_reference, reference_ids
from punie_gates.checks.tokenizer.round_trip import (
    DETOKENIZER_PROBES,
    DetokenizerReport,
    assistant_texts,
    check_round_trip,
    check_served_round_trip,
    judge_round_trip,
    texts_to_stream,
)
from punie_gates.checks.tokenizer.split_markers import find_split_markers
from punie_gates.checks.tokenizer.tool_parsing import tool_parsing_of
from punie_gates.checks.tokenizer.vocabulary import (
    FAMILY_MARKERS,
    REQUIRED_TOOL_MARKERS,
    format_family,
    naive_text_probe,
)

__all__ = [
    "DETOKENIZER_PROBES",
    "FAMILY_MARKERS",
    "REQUIRED_TOOL_MARKERS",
    "DetokenizerReport",
    "Expectations",
    "Gate0Report",
    "MarkerReport",
    "ParityReport",
    "Reference",
    "ReferenceUnavailable",
    "assistant_texts",
    "build_reference",
    "canonical_conversation",
    "check_parity",
    "check_round_trip",
    "check_served_round_trip",
    "compare_path",
    "expectations",
    "find_split_markers",
    "format_family",
    "inspect_tokenizer",
    "judge_round_trip",
    "mlx_path_name",
    "naive_text_probe",
    "reference_ids",
    "serving_prompts",
    "texts_to_stream",
    "tool_parsing_of",
]
