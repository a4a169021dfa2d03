"""The decode context: the tokens in llama.cpp's KV cache, their evaluation, truncation, and a
zero-copy view of the next-token logits.

This is the hot path of a governed generation on llama.cpp: one ``llama_decode`` of a
one-token batch whose constant fields are filled once, and a logits view that is rebuilt only
if llama.cpp moves its output buffer.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

from aqcore.errors import AdapterError

__all__ = ["DecodeContext"]


class DecodeContext:
    """Sequence 0 of one ``llama_context``: what is cached, and the logits after its last token.

    :param llama_cpp: the ``llama_cpp`` module (imported lazily by the adapter).
    :param ctx: the ``llama_context_p``.
    :param n_ctx: the context size in tokens.
    :param n_batch: the most tokens one ``llama_decode`` call may take.
    :param n_vocab: the width of a logits row.
    """

    def __init__(self, llama_cpp: Any, ctx: Any, *, n_ctx: int, n_batch: int, n_vocab: int) -> None:
        self._lib = llama_cpp
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._decode = llama_cpp.llama_decode
        self._get_logits = llama_cpp.llama_get_logits_ith
        self.n_ctx = n_ctx
        self._n_batch = n_batch
        self._n_vocab = n_vocab
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        # The one-token batch's seq id, seq count and logits flag never change: set them once.
        self._one = llama_cpp.llama_batch_init(1, 0, 1)
        self._one.n_tokens = 1
        self._one.seq_id[0][0] = 0
        self._one.n_seq_id[0] = 1
        self._one.logits[0] = 1
        self._one_token = self._one.token
        self._one_pos = self._one.pos
        self.ids = np.zeros(n_ctx, dtype=np.intc)
        """Token ids in the cache; only the first ``n`` are meaningful."""
        self.n = 0
        """How many tokens the cache holds."""
        # Only tokens evaluated as part of a prompt batch are reused by the next prompt: llama.cpp
        # computes a token's KV entries slightly differently one at a time than in a batch, and a
        # prompt must give the same logits whether or not this process decoded its prefix before
        # (otherwise output would depend on process history, not on the conversation).
        self._reusable = 0
        self._view: np.ndarray | None = None
        self._view_address = 0
        # A copy of the logits after the last prompt evaluated, and its length in tokens.
        self._prompt_logits: np.ndarray | None = None
        self._prompt_n = 0

    @property
    def logits(self) -> np.ndarray:
        """The next-token logits after the last evaluated token: a float32 view of llama.cpp's
        output buffer (no copy), valid until the next evaluation or truncation."""
        if self._view is None:
            raise AdapterError("llamacpp: no logits yet; call begin() to evaluate a prompt first")
        return self._view

    def common_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` are already in the cache at the same positions."""
        limit = min(self.n, len(tokens))
        if limit == 0:
            return 0
        same = self.ids[:limit] == np.asarray(tokens[:limit], dtype=np.intc)
        mismatch = np.flatnonzero(~same)
        return int(mismatch[0]) if mismatch.size else limit

    def evaluate(self, tokens: Sequence[int], *, reuse_prefix: bool = True) -> int:
        """Make the cache hold exactly ``tokens`` and compute the logits after the last one.

        With ``reuse_prefix`` the cached prefix shared with ``tokens`` is kept, as far as it was
        evaluated by a previous prompt (not token by token), so the logits are bit-identical to
        a fresh evaluation. At least the last token is evaluated again, because only the last
        evaluation's logits are kept.

        :return: how many tokens were taken from the cache.
        :raises AdapterError: ``tokens`` is empty or does not fit the context.
        """
        if not tokens:
            raise AdapterError("llamacpp: cannot evaluate an empty prompt")
        if len(tokens) >= self.n_ctx:
            raise AdapterError(
                f"llamacpp: the prompt is {len(tokens)} tokens, the context holds {self.n_ctx} "
                "(raise n_ctx or shorten the conversation)"
            )
        keep = min(self.common_prefix(tokens), len(tokens) - 1, self._reusable) if reuse_prefix else 0
        keep = self._truncate_cache(keep)
        batch = self._batch
        for start in range(keep, len(tokens), self._n_batch):
            chunk = tokens[start : start + self._n_batch]
            count = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = start + i
                batch.seq_id[i][0] = 0
                batch.n_seq_id[i] = 1
                batch.logits[i] = 0
            batch.logits[count - 1] = 1
            batch.n_tokens = count
            self._run(batch, f"the prompt tokens {start}..{start + count - 1}")
            self.ids[start : start + count] = chunk
            self.n = self._reusable = start + count
        self._refresh_view()
        assert self._view is not None
        if self._prompt_logits is None or self._prompt_logits.shape != self._view.shape:
            self._prompt_logits = np.empty_like(self._view)
        np.copyto(self._prompt_logits, self._view)
        self._prompt_n = self.n
        return keep

    def push(self, token: int) -> None:
        """Evaluate one token after the cached ones (the per-step call)."""
        n = self.n
        if n >= self.n_ctx:
            raise AdapterError(f"llamacpp: the context is full ({self.n_ctx} tokens); raise n_ctx")
        self._one_token[0] = token
        self._one_pos[0] = n
        self._run(self._one, f"token {token} at position {n}")
        self.ids[n] = token
        self.n = n + 1
        self._refresh_view()

    def truncate(self, keep: int) -> None:
        """Keep the first ``keep`` (≥ 1) cached tokens and recompute the logits after them.

        The logits after token ``keep - 1`` were overwritten by later steps, so that token is
        evaluated again; llama.cpp then gives bit-identical logits to the first time. A token
        that was evaluated inside a prompt batch is not evaluated alone (for some prompt lengths
        that gives different logits): back to the end of the prompt, the logits kept from its
        evaluation are restored; further back, the prompt is evaluated again as the first time.
        """
        if not 1 <= keep <= self.n:
            raise AdapterError(f"llamacpp: cannot keep {keep} of {self.n} cached tokens")
        if keep == self._prompt_n and self._prompt_logits is not None:
            # back to the end of the prompt: its KV entries are intact, and its logits were kept
            self._truncate_cache(keep)
            self._view = self._prompt_logits.copy()  # a copy: whoever writes into it spoils no other
            self._view_address = 0  # the next evaluation points the view at llama.cpp's buffer again
            return
        if keep <= self._reusable:
            self.evaluate(self.ids[:keep].tolist(), reuse_prefix=False)
            return
        last = int(self.ids[keep - 1])
        if self._truncate_cache(keep - 1) != keep - 1:
            raise AdapterError(
                "llamacpp: this model's memory (recurrent state) cannot drop its last tokens; "
                "rollback is not supported for it"
            )
        self.push(last)

    def close(self) -> None:
        """Free the batches. The context itself belongs to the ``Llama`` object."""
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_batch_free(self._one)
            self._batch = self._one = None
        self._view = None

    def _truncate_cache(self, keep: int) -> int:
        """Drop cached tokens from position ``keep`` on; returns how many are left."""
        if keep < self.n and self._memory is not None:
            # seq_rm fails only for partial removal in recurrent models; clear then.
            if not self._lib.llama_memory_seq_rm(self._memory, 0, keep, -1):
                self._lib.llama_memory_clear(self._memory, True)
                keep = 0
        self.n = min(self.n, keep)
        self._reusable = min(self._reusable, self.n)
        return self.n

    def _run(self, batch: Any, what: str) -> None:
        rc = self._decode(self._ctx, batch)
        if rc != 0:
            # 1: no KV slot for the batch; < 0: a hard error. Either way the step did not happen.
            raise AdapterError(f"llamacpp: llama_decode failed with code {rc} on {what}")

    def _refresh_view(self) -> None:
        pointer = self._get_logits(self._ctx, -1)
        address = ctypes.cast(pointer, ctypes.c_void_p).value
        if not address:
            raise AdapterError("llamacpp: llama.cpp returned no logits for the last token")
        if address != self._view_address:
            self._view = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
            self._view_address = address
