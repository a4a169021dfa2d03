"""The llama.cpp token adapter: aq drives llama.cpp's decode loop one token at a time.

Loading uses ``llama_cpp.Llama``; the decode loop is aq's own (:mod:`aq_llamacpp.context`):
no ``create_completion``, no Python logits processor, no copy of the logits per step.
"""

from __future__ import annotations

import ctypes
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from aqcore.adapters import Vocabulary
from aqcore.errors import AdapterError, UsageError
from aqcore.models import Message

from .chat import ChatTemplate, resolve_chat_template
from .context import DecodeContext
from .models import ResolvedModel, resolve_model
from .threads import default_threads
from .vocab import cached_vocabulary

__all__ = ["LlamaCppAdapter", "LlamaCppOptions"]

NAME = "llamacpp"


@dataclass(frozen=True)
class LlamaCppOptions:
    """The adapter's options (``aq run --adapter llamacpp --option key=value``).

    :param n_ctx: context size in tokens (prompt plus generation).
    :param n_threads: CPU threads for decoding; None: one per physical core this process may use,
        capped by its cgroup CPU quota (:func:`aq_llamacpp.threads.default_threads`).
    :param n_gpu_layers: layers offloaded to the GPU in a CUDA/Metal build of llama-cpp-python
        (-1: all); 0 keeps the model on the CPU.
    :param seed: llama.cpp's RNG seed; aq samples itself, so this only matters to llama.cpp.
    :param n_batch: the most prompt tokens evaluated in one call.
    :param chat_template: Jinja source, or the name of a llama.cpp built-in template, used
        instead of the GGUF's own.
    :param verbose: let llama.cpp log to stderr.
    """

    n_ctx: int = 2048
    n_threads: int | None = None
    n_gpu_layers: int = 0
    seed: int | None = None
    n_batch: int = 512
    chat_template: str | None = None
    verbose: bool = False

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> LlamaCppOptions:
        """Validate keyword options; :class:`UsageError` names the bad key and what it accepts."""
        fields = cls.__dataclass_fields__
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise UsageError(f"{NAME}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(fields)}")
        values: dict[str, Any] = {}
        for key, value in options.items():
            values[key] = _coerce(key, value)
        return cls(**values)


def _coerce(key: str, value: Any) -> Any:
    # Options may arrive as strings from the CLI (`--option n_ctx=4096`).
    if key == "chat_template":
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{NAME}: option chat_template must be a string, got {type(value).__name__}")
        return value
    if key == "verbose":
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        raise UsageError(f"{NAME}: option verbose must be true or false, got {value!r}")
    if value is None and key in ("n_threads", "seed"):
        return None
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or (isinstance(value, float) and value != number):
        raise UsageError(f"{NAME}: option {key} must be an integer, got {value!r}")
    minimum = {"n_ctx": 16, "n_threads": 1, "n_gpu_layers": -1, "seed": 0, "n_batch": 1}[key]
    if number < minimum:
        raise UsageError(f"{NAME}: option {key} must be >= {minimum}, got {number}")
    return number


class LlamaCppAdapter:
    """:class:`aqcore.adapters.TokenAdapter` on llama-cpp-python.

    :param model: ``smollm2``, ``gemma3-270m`` or a path to a ``.gguf`` file
        (see :func:`aq_llamacpp.models.resolve_model`).
    :param options: see :class:`LlamaCppOptions`.
    :raises AdapterError: the model cannot be resolved or loaded.
    :raises UsageError: an option is unknown or has a bad value.
    """

    granularity: Literal["token"] = "token"
    name = NAME

    def __init__(self, model: str, **options: Any) -> None:
        self.options = LlamaCppOptions.from_mapping(options)
        self.resolved: ResolvedModel = resolve_model(model)
        self.model_name = self.resolved.name
        self.model_digest = self.resolved.sha256
        self._llm = _load(self.resolved, self.options)
        import llama_cpp

        self._lib = llama_cpp
        self._vocab_ptr = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.vocab: Vocabulary = cached_vocabulary(llama_cpp, self._vocab_ptr, self.model_digest)
        n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab_ptr))
        self.template: ChatTemplate = resolve_chat_template(llama_cpp, self._llm, self.options.chat_template)
        self._ctx = DecodeContext(
            llama_cpp, self._llm.ctx, n_ctx=self._llm.n_ctx(), n_batch=self._llm.n_batch, n_vocab=n_vocab
        )
        self._prompt_len = 0
        self._begun = False
        self._closed = False
        self._lltokenizer: Any = None
        self._lltokenizer_lock = threading.Lock()

    # -- TokenAdapter -------------------------------------------------------------------------

    def begin(self, messages: list[Message]) -> None:
        """Render ``messages`` with the chat template (generation prompt added), tokenize and
        evaluate them, the whole prompt every time, as a fresh process would."""
        self._check_open("begin")
        self._begun = False
        tokens = self.tokenize_prompt(messages)
        # No cached prefix is reused: llama.cpp's CPU kernels compute a token's activations
        # differently depending on the shape of the batch it was in, so KV entries kept from an
        # earlier, differently split evaluation change the logits (by up to ~0.9 on SmolLM2 for
        # some prompt lengths) and the output would depend on what this process decoded before,
        # not on the conversation. Same prompt, same logits, bit for bit.
        self._ctx.evaluate(tokens, reuse_prefix=False)
        self._prompt_len = len(tokens)
        self._begun = True

    def logits(self) -> np.ndarray:
        """The next-token logits: a float32 view of shape (vocab.size,) on llama.cpp's output
        buffer, valid until the next :meth:`accept` or :meth:`rollback`."""
        if not self._begun:
            self._check_ready("logits")
        return self._ctx.logits

    def accept(self, token_id: int) -> None:
        """Evaluate ``token_id`` after the context; AdapterError for an id outside the vocabulary."""
        if not self._begun:
            self._check_ready("accept")
        # Plain ints and numpy integers are the only ids; bool is an int subclass, reject it.
        if token_id.__class__ is not int and (
            isinstance(token_id, bool) or not isinstance(token_id, int | np.integer)
        ):
            raise AdapterError(f"{NAME}: accept() needs an int token id, got {type(token_id).__name__}")
        if not 0 <= token_id < self.vocab.size:
            raise AdapterError(f"{NAME}: accept({token_id}): token id out of range 0..{self.vocab.size - 1}")
        self._ctx.push(int(token_id))

    def rollback(self, k: int) -> None:
        """Drop the last ``k`` generated tokens from the KV cache and restore the logits after
        the new last token (bit-identical to when it was first computed, whatever the loop wrote
        into the view; ``k == 0`` only restores them).

        :raises AdapterError: ``k`` is negative or more than this generation has produced (the
            prompt cannot be rolled back).
        """
        self._check_ready("rollback")
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise AdapterError(f"{NAME}: rollback() needs an int, got {type(k).__name__}")
        generated = self._ctx.n - self._prompt_len
        if not 0 <= k <= generated:
            raise AdapterError(
                f"{NAME}: rollback({k}) but this generation has {generated} generated token(s); "
                f"k must be 0..{generated}"
            )
        # Even k == 0 re-evaluates the last token: the loop may have written masks into the
        # logits view, and after a rollback it must see the model's logits again.
        self._ctx.truncate(self._ctx.n - int(k))

    def close(self) -> None:
        """Free the model and its context; later calls raise AdapterError."""
        if self._closed:
            return
        self._closed = True
        self._begun = False
        self._lltokenizer = None  # it points into the model's vocabulary
        self._ctx.close()
        self._llm.close()

    # -- helpers for callers and metrics --------------------------------------------------------

    @property
    def generated(self) -> tuple[int, ...]:
        """The ids accepted in this generation and not rolled back."""
        return tuple(int(t) for t in self._ctx.ids[self._prompt_len : self._ctx.n])

    @property
    def text(self) -> str:
        """The text of :attr:`generated` (special tokens add nothing)."""
        return self.detokenize(self.generated).decode("utf-8", errors="replace")

    @property
    def n_ctx(self) -> int:
        """The context size llama.cpp allocated (``n_ctx`` rounded up to its padding)."""
        return self._ctx.n_ctx

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for inspection; do not decode with it)."""
        self._check_open("llama")
        return self._llm

    def tokenize_prompt(self, messages: list[Message]) -> list[int]:
        """The prompt ids for ``messages``: chat template with the generation prompt, tokenized
        with special tokens parsed (as llama-cpp-python's chat completion does)."""
        self._check_open("tokenize_prompt")
        if not messages:
            raise AdapterError(f"{NAME}: begin() needs at least one message")
        text = self.template.render(messages)
        ids: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=self.template.add_bos, special=True)
        return ids

    def detokenize(self, ids: Any) -> bytes:
        """llama.cpp's own detokenization (``llama_detokenize``) of ``ids``; special tokens add
        nothing. For models whose tokenizer adds a space prefix, llama.cpp drops the first
        token's leading space, which the vocabulary's bytes keep (mid-text it is real text)."""
        self._check_open("detokenize")
        tokens = [int(i) for i in ids]
        if not tokens:
            return b""
        array = (self._lib.llama_token * len(tokens))(*tokens)
        size = 64 + 8 * len(tokens)
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = int(self._lib.llama_detokenize(self._vocab_ptr, array, len(tokens), buf, size, False, False))
            if 0 <= n <= size:
                return buf.raw[:n]
            size = abs(n) + 1
        raise AdapterError(f"{NAME}: llama_detokenize failed for {len(tokens)} token(s)")

    def llguidance_tokenizer(self) -> Any:
        """An ``llguidance.LLTokenizer`` for this model, built on first call and kept for the
        adapter's lifetime (it calls into this model's vocabulary, so it dies with the adapter).
        Its end-of-sequence ids are :attr:`vocab.eos_ids <aqcore.adapters.Vocabulary.eos_ids>`."""
        self._check_open("llguidance_tokenizer")
        with self._lltokenizer_lock:
            if self._lltokenizer is None:
                try:
                    from llguidance.llamacpp import lltokenizer_from_vocab
                except ImportError as exc:
                    raise AdapterError(
                        f"{NAME}: llguidance is not installed ({exc}); pip install llguidance"
                    ) from exc
                with warnings.catch_warnings():
                    # llguidance calls llama_token_get_attr, deprecated in llama-cpp-python 0.3.x,
                    # once per token: one warning each.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._lltokenizer = lltokenizer_from_vocab(
                        self._vocab_ptr, eos_token=sorted(self.vocab.eos_ids)
                    )
            return self._lltokenizer

    def __enter__(self) -> LlamaCppAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise AdapterError(f"{NAME}: {call}() after close()")

    def _check_ready(self, call: str) -> None:
        self._check_open(call)
        if not self._begun:
            raise AdapterError(f"{NAME}: {call}() before begin()")


def _load(resolved: ResolvedModel, options: LlamaCppOptions) -> Any:
    try:
        import llama_cpp
        from llama_cpp._utils import suppress_stdout_stderr
    except ImportError as exc:
        raise AdapterError(
            f"{NAME}: llama-cpp-python is not installed ({exc}); pip install llama-cpp-python==0.3.36 "
            '(for CUDA: CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python==0.3.36)'
        ) from exc
    kwargs: dict[str, Any] = {
        "model_path": str(resolved.path),
        "n_ctx": options.n_ctx,
        "n_batch": min(options.n_batch, options.n_ctx),
        "n_gpu_layers": options.n_gpu_layers,
        "logits_all": False,
        "verbose": options.verbose,
    }
    kwargs["n_threads"] = options.n_threads if options.n_threads is not None else default_threads()
    if options.seed is not None:
        kwargs["seed"] = options.seed
    try:
        # llama-cpp-python only silences model loading; context creation still logs to stderr.
        with suppress_stdout_stderr(disable=options.verbose):
            return llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise AdapterError(
            f"{NAME}: cannot load model {resolved.name!r} from {str(resolved.path)!r}: {exc}"
        ) from exc
