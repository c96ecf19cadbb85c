"""Gate 0's figures: the training data converts whole, prompts render like training, and
the candidate's tool format survives its tokenizer on every path (docs/gate0-tokenizer.md).

Every field is optional: None means not recorded (see results/shared.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from punie_gates.results.shared import GateFigures, ServingPlan


@dataclass(frozen=True)
class Conversion:
    """One split's conversion from Qwen3 to the candidate's form (formats.records.ConversionResult)."""

    read: int | None = None
    """Conversations read."""
    converted: int | None = None
    """Conversations converted."""
    rejected: int | None = None
    """Conversations rejected (each is a failure of the gate)."""


@dataclass(frozen=True)
class DataOverlap:
    """Duplicates within the training data and validation conversations also in it (a flag, not a failure)."""

    train_duplicates: int | None = None
    """Training conversations that appear more than once."""
    valid_in_train: int | None = None
    """Validation conversations that also appear in the training data."""
    valid_in_train_lines: tuple[int, ...] | None = None
    """Their valid.jsonl line numbers (the first 20)."""


@dataclass(frozen=True)
class Marker:
    """One format marker in the candidate's vocabulary (checks.tokenizer.markers.MarkerReport.figure)."""

    ids: tuple[int, ...] | None = None
    """The ids its text encodes to."""
    id: int | None = None
    """Its id in the vocabulary; null when it is not one token."""
    single: bool | None = None
    """Whether its text is a single token."""
    control: bool | None = None
    """Whether that token is a control (special) token."""
    emitted: bool | None = None
    """Whether the candidate's chat template emits it."""
    text_can_produce: bool | None = None
    """Whether ordinary text can encode to it (a marker text could forge)."""
    note: str | None = None
    """A remark (for a seed delimiter this format never emits); absent when none."""


@dataclass(frozen=True)
class TrainingRender:
    """Every converted training record rendered through the training tokenizer."""

    records: int | None = None
    """Records rendered."""
    failed: int | None = None
    """Records that could not be rendered."""


@dataclass(frozen=True)
class SplitMarkers:
    """Places in the converted training data that write a format marker as text."""

    count: int | None = None
    """How many there are."""
    first: tuple[str, ...] | None = None
    """The first three, each with where it is."""


@dataclass(frozen=True)
class IdMismatches:
    """Ids compared with mistral-common's reference on one set of inputs (checks.tokenizer.parity)."""

    records_checked: int | None = None
    """Records (or generation prompts) compared."""
    mismatches: int | None = None
    """How many got other ids than the reference."""
    first: tuple[str, ...] | None = None
    """The first differences, shown around where they start."""


@dataclass(frozen=True)
class Parity(IdMismatches):
    """A rendering path's ids against mistral-common's reference: training records in finetuning mode (the
    fields above) and generation prompts in serving mode (`serving`)."""

    source: str | None = None
    """Where the reference's vocabulary comes from (the candidate's tekken.json, or built from tokenizer.json)."""
    version: str | None = None
    """The reference's tokenizer version and where it was read."""
    independent_of_mlx_lm: bool | None = None
    """Whether the reference shares no code path with what mlx-lm loads."""
    path: str | None = None
    """The path compared (mlx-lm's tokenizer class and where it loads from); `parity` only."""
    template: str | None = None
    """The shipped template compared; `template_parity` only."""
    serving: IdMismatches | None = None
    """The generation prompts' comparison."""
    seconds: float | None = None
    """Seconds the comparison took."""


@dataclass(frozen=True)
class RoundTrip:
    """Ids back to their text through tokenizer.decode and mlx-lm's streaming detokenizer
    (checks.tokenizer.round_trip.RoundTrip.figure)."""

    backend: str | None = None
    """The tokenizer backend's class."""
    detokenizer: str | None = None
    """mlx-lm's streaming detokenizer class."""
    decoder: str | None = None
    """The decoder in use, described."""
    texts: int | None = None
    """Texts checked (probe texts, or the training data's assistant turns)."""
    decode_wrong: int | None = None
    """Texts tokenizer.decode gives back wrong."""
    stream_wrong: int | None = None
    """Texts the streaming detokenizer gives back wrong."""
    stream_raised: int | None = None
    """Texts on which the streaming detokenizer raised at the end of a reply."""
    stream_replacement_chars: int | None = None
    """Texts streamed with U+FFFD where a character spans several tokens."""
    replaced_chars: tuple[str, ...] | None = None
    """The characters streamed as U+FFFD."""
    first: tuple[str, ...] | None = None
    """The first problem of each kind, in words."""
    training_data: RoundTrip | None = None
    """The same on every assistant turn of the training data (the fields above are the probe texts)."""
    seconds: float | None = None
    """Seconds the check took; `detokenizer` only."""
    served: str | None = None
    """Where the texts were streamed: the backend, the serving environment and the folder the serving
    plan serves; `detokenizer` only (the judged measurement)."""
    judged: bool | None = None
    """False on `detokenizer_in_suite`: measured, never judged or flagged."""
    note: str | None = None
    """Why a measurement is reported but not judged; `detokenizer_in_suite` only."""


@dataclass(frozen=True)
class ServingIds:
    """Ids the serving path renders, against the reference (checks.serving_parity.PathParity.figure)."""

    checked: int | None = None
    """Inputs compared."""
    mismatches: int | None = None
    """Inputs with other ids than the reference."""
    first: str | None = None
    """The first difference ("" when none)."""
    cause: str | None = None
    """Its cause when known ("" otherwise)."""


@dataclass(frozen=True)
class ServingParity:
    """The ids production's serving path (mlx_lm.server, mlx_lm.lora in the serving environment) renders."""

    prompts: ServingIds | None = None
    """Generation prompts, as mlx_lm.server renders them."""
    records: ServingIds | None = None
    """Training records, as mlx_lm.lora renders them."""
    regex_warning: bool | None = None
    """Whether the serving environment's transformers warns about the tokenizer's regex."""
    fix_mistral_regex_matches: bool | None = None
    """Whether fix_mistral_regex=True would give the reference's ids; null when not tried."""
    same_path_as: str | None = None
    """`parity` when this is the same backend on the same files as the parity check (judged there);
    absent otherwise."""


@dataclass(frozen=True)
class Gate0Figures(GateFigures):
    """Gate 0 (hard): tokenizer and data, before any weights are read."""

    train_conversion: Conversion | None = None
    """train.jsonl's conversion."""
    valid_conversion: Conversion | None = None
    """valid.jsonl's conversion."""
    training_data: str | None = None
    """The training data folder (--training-data)."""
    tools: tuple[str, ...] | None = None
    """The tools the training data was converted with (the catalog's native tools)."""
    system_prompt: str | None = None
    """The validation prompts' system prompt."""
    training_examples_with_that_prompt: int | None = None
    """Training examples whose system prompt is that one."""
    data_overlap: DataOverlap | None = None
    """Duplicates and validation conversations found in the training data."""
    candidate: str | None = None
    """The candidate's name."""
    tokenizer_class: str | None = None
    """The tokenizer class mlx-lm loads for training."""
    format_family: str | None = None
    """The chat format the tokenizer has: `mistral`, `qwen3` or `unknown`."""
    markers: Mapping[str, Marker] | None = None
    """Each marker the format uses, by its text."""
    seed_delimiters: Mapping[str, Marker] | None = None
    """The seed plan's delimiters, by their text (reported beside the markers; `[/TOOL_CALLS]` is never emitted)."""
    canonical_conversation_ids: int | None = None
    """Ids of the canonical tool conversation as the template renders it."""
    finetuning_render: str | None = None
    """`ok`, or why the tokenizer cannot render a conversation ending with an assistant turn."""
    training_render: TrainingRender | None = None
    """The converted training records rendered."""
    split_markers: SplitMarkers | None = None
    """Markers written as text in the converted training data."""
    parity: str | Parity | None = None
    """mlx-lm's ids against mistral-common's reference; a string saying why the comparison was not made."""
    template_parity: str | Parity | None = None
    """The shipped chat template (the path tokenizers-backend users render with) against the reference; a
    string when not compared, saying why."""
    detokenizer: RoundTrip | None = None
    """Ids back to text where the candidate is served (the serving plan's folder, in the serving
    environment): what Gate 0 judges."""
    detokenizer_in_suite: RoundTrip | None = None
    """The same measured on the suite's own load (mistral-common installed, so MistralCommonBackend
    where tekken.json ships): reported, never judged; absent when it is the served backend."""
    detokenizer_without_tekken: RoundTrip | None = None
    """The same from the folder without tekken.json; absent when the folder has no other template."""
    serving_plan: ServingPlan | None = None
    """How production's environment serves the candidate's folder."""
    serving_parity: str | ServingParity | None = None
    """The ids the serving path renders against the reference; a string when not compared, saying why."""
    seconds: float | None = None
    """Seconds from the first Gate 0 test to its decision."""
