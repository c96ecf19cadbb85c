"""Which tool parser mlx_lm.server would pick for the candidate's tokenizer, read from mlx-lm's wrapper."""

from __future__ import annotations

from punie_gates.answering.tool_parsing import ToolParsing
from punie_gates.model.tokenizer import backend_of


def tool_parsing_of(tokenizer) -> ToolParsing:
    """Which tool parser mlx_lm.server picks for this tokenizer (a TokenizerWrapper loaded as
    the server loads it: default mode), read from the wrapper, not guessed."""
    parser = tokenizer.tool_parser
    return ToolParsing(
        tokenizer_class=type(backend_of(tokenizer)).__name__,
        tool_parser=getattr(parser, "__module__", None) if parser is not None else None,
        tool_call_start=tokenizer.tool_call_start,
        detokenizer=type(tokenizer.detokenizer).__name__,
    )
