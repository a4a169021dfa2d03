"""Chat templates: turn aq's messages into the prompt text a GGUF model was trained on.

The template is, in order of preference: the ``chat_template`` option (Jinja source, or the
name of one of llama.cpp's built-in templates such as ``chatml`` or ``gemma``); the GGUF
metadata key ``tokenizer.chat_template``, rendered with Jinja exactly as llama-cpp-python's
``Jinja2ChatFormatter`` does; llama.cpp's built-in template named after the model's
architecture (e.g. ``gemma`` for ``gemma3`` files that carry no template).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aqcore.errors import AdapterError
from aqcore.models import Message

__all__ = ["ChatTemplate", "builtin_template_names", "resolve_chat_template"]


@dataclass(frozen=True)
class ChatTemplate:
    """A prompt renderer and how its output must be tokenized.

    ``source`` names where the template came from (for errors and receipts); ``add_bos`` says
    whether the tokenizer must add BOS itself (False when the template writes it).
    """

    source: str
    render: Callable[[Sequence[Message]], str]
    add_bos: bool


def builtin_template_names(llama_cpp: Any) -> list[str]:
    """Names of the chat templates built into llama.cpp."""
    capacity = 256
    names = (ctypes.c_char_p * capacity)()
    count = int(llama_cpp.llama_chat_builtin_templates(names, capacity))
    return [(names[i] or b"").decode() for i in range(min(count, capacity))]


def resolve_chat_template(llama_cpp: Any, llm: Any, override: str | None = None) -> ChatTemplate:
    """The chat template for the loaded ``llm`` (a ``llama_cpp.Llama``), see the module docstring.

    :raises AdapterError: no template is given, the GGUF has none and the architecture has no
        built-in one; or the Jinja source does not compile.
    """
    builtins = builtin_template_names(llama_cpp)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))
    if override is not None:
        if override in builtins:
            return _builtin(llama_cpp, override, add_bos)
        return _jinja(llm, override, "option chat_template")
    source = llm.metadata.get("tokenizer.chat_template")
    if source:
        return _jinja(llm, source, "GGUF tokenizer.chat_template")
    arch = llm.metadata.get("general.architecture", "")
    # gemma2 / gemma3 files share the "gemma" turn format.
    for name in (arch, arch.rstrip("0123456789")):
        if name and name in builtins:
            return _builtin(llama_cpp, name, add_bos)
    raise AdapterError(
        f"llamacpp: the model (architecture {arch!r}) has no tokenizer.chat_template in its GGUF "
        f"metadata and no built-in template; pass chat_template= with Jinja source or one of "
        f"{', '.join(builtins)}"
    )


def _jinja(llm: Any, source: str, origin: str) -> ChatTemplate:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = llm._model  # llama-cpp-python reads the BOS/EOS text the same way
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    try:
        formatter = Jinja2ChatFormatter(
            template=source,
            eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
            add_generation_prompt=True,
        )
    except Exception as exc:  # jinja2.TemplateSyntaxError and friends
        raise AdapterError(f"llamacpp: the chat template from {origin} does not compile: {exc}") from exc

    def render(messages: Sequence[Message]) -> str:
        try:
            turns: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
            return formatter(messages=turns).prompt
        except Exception as exc:  # the template's own raise_exception(), undefined variables
            raise AdapterError(f"llamacpp: the chat template from {origin} failed: {exc}") from exc

    # The Jinja template writes any BOS itself (llama-cpp-python tokenizes it with add_bos=False).
    return ChatTemplate(source=origin, render=render, add_bos=False)


def _builtin(llama_cpp: Any, name: str, add_bos: bool) -> ChatTemplate:
    tmpl = name.encode()

    def render(messages: Sequence[Message]) -> str:
        # Keep the encoded strings alive while llama.cpp reads them.
        encoded = [(m.role.encode(), m.content.encode()) for m in messages]
        chat = (llama_cpp.llama_chat_message * len(encoded))(*encoded)
        size = 256 + sum(len(r) + len(c) + 32 for r, c in encoded)
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = int(llama_cpp.llama_chat_apply_template(tmpl, chat, len(encoded), True, buf, size))
            if n < 0:
                raise AdapterError(f"llamacpp: llama.cpp's built-in chat template {name!r} failed ({n})")
            if n <= size:
                return buf.raw[:n].decode("utf-8")
            size = n + 1
        raise AdapterError(f"llamacpp: llama.cpp's built-in chat template {name!r} kept growing")

    return ChatTemplate(source=f"llama.cpp built-in {name!r}", render=render, add_bos=add_bos)
