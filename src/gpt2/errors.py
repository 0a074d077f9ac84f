"""The project's error types: each message names the file, field or value at fault and what was expected."""


class GPT2Error(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class ConfigError(GPT2Error, ValueError):
    """A model configuration (or config.json) is invalid."""


class CheckpointError(GPT2Error):
    """A checkpoint is missing, incomplete or corrupt, or cannot be fetched."""


class TokenizerError(GPT2Error, ValueError):
    """A vocabulary file is missing or does not parse, or a tokenizer option is invalid."""


class DataError(GPT2Error, ValueError):
    """Input data (corpus, task file) is malformed."""
