"""The transformers backend: any local or Hub Gemma (google/gemma-3n-E2B-it, google/medgemma-4b-it, ...), batched.

Prompts are padded on the left and generated ``batch_size`` at a time (sorted by length, so a batch pads little);
message prompts go through the tokenizer's chat template (Gemma's turn markup when it has none), with any system
message folded into the first user turn. ``temperature == 0`` decodes greedily. With a seed, ``torch.manual_seed``
is set before each batch, so a run is reproducible for the same prompts and batch size.

A GGUF file (``gguf_file``, or a ``model`` that is a ``.gguf`` path, or ``"embedded"``) is dequantized once by
transformers (slow: about a minute for the 270M model on two cores) and the dense checkpoint is saved under
``<cache_dir>/<sha256 of the file>/<dtype>/``, written to a temporary folder and renamed into place, so later loads
take seconds and give the same logits.

On CPU, ``n_threads`` sets torch's (process-wide) thread count; more threads than idle cores makes generation
several times slower, not faster.

A vision-language checkpoint (a config with ``vision_config``: Gemma 3, Gemma 3n, MedGemma) loaded from a folder or
the Hub also loads its ``AutoProcessor`` and sets ``vision``: message prompts with image parts are rendered with the
processor's chat template (Gemma's turn markup with the processor's image token first in the turn when it has none),
and the processor turns the text and images into token ids and pixel values. Image prompts are batched apart from
text-only ones; a text-only model given an image part raises ``ValueError``.

``json_schema`` is enforced with xgrammar (``curate.llm.constrain``): the model can write only JSON that matches it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

from curate.io import file_sha256

from .base import LLM, Generation, Prompt, Sampling, prompt_images
from .chat import END, fold_system, gemma_prompt
from .llamacpp import EMBEDDED, embedded_gguf

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("~/.cache/curate/models")
_DTYPES = ("auto", "bfloat16", "float32", "float16")


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str, model_name: str):
    """bfloat16 unless asked otherwise (float32 on a GPU without bf16); never float16 for Gemma 3n."""
    import torch

    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
    if dtype == "float16" and _is_gemma3n(model_name):
        raise ValueError(f"{model_name} is a Gemma 3n model, which overflows in float16: use dtype bfloat16 "
                         "or float32")
    if dtype == "auto":
        if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            return torch.float32
        return torch.bfloat16
    return getattr(torch, dtype)


def _is_gemma3n(name: str) -> bool:
    name = name.lower().replace("_", "-")
    return "gemma-3n" in name or "gemma3n" in name


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


@contextlib.contextmanager
def _shared_gguf_reader():
    """Parse a GGUF file's metadata once while loading it.

    transformers' loader for Gemma GGUFs builds a ``gguf.GGUFReader`` three times (config, weights, tokenizer's
    config), and each build walks Gemma's 262k-entry vocabulary element by element: about 25 s apiece on two
    cores. While this context is open, ``gguf.GGUFReader`` returns one (read-only) reader per file.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict = {}

    def shared_reader(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def load_gguf_dequantized(gguf: Path, dtype, cache_dir: str | os.PathLike | None = None):
    """(model, tokenizer) from a GGUF file, through the dense-checkpoint cache described in the module docstring."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    root = Path(cache_dir or DEFAULT_CACHE).expanduser()
    target = root / file_sha256(gguf) / _dtype_name(dtype)
    if (target / "config.json").is_file():
        log.debug("loading dequantized %s from %s", gguf.name, target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
        return model, AutoTokenizer.from_pretrained(target)

    log.info("dequantizing %s with transformers (once; cached in %s)", gguf.name, target)
    with _shared_gguf_reader():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype,
                                                     quantization_config=GgufConfig(dequantize=True))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain dense tensors now; forget the GGUF quantizer so save_pretrained writes safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not another process that won the race
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        log.warning("could not cache the dequantized model in %s (%s); the next load dequantizes again",
                    target, exc)
    return model, tokenizer


class TransformersLLM(LLM):
    """A causal LM from transformers, generating in left-padded batches of ``batch_size``."""

    backend = "transformers"

    def __init__(self, model: str | os.PathLike | None = None, *, instruction_tuned: bool = False,
                 gguf_file: str | None = None, device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 cache_dir: str | os.PathLike | None = None, n_threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        name = EMBEDDED if model is None or str(model) == EMBEDDED else str(model)
        super().__init__(name, instruction_tuned)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device, name)
        self.batch_size = max(1, int(batch_size))
        if n_threads and self.device == "cpu":
            torch.set_num_threads(n_threads)  # process-wide: torch has no per-model setting

        gguf = self._gguf_path(name, gguf_file)
        self.processor = None
        if gguf is not None:
            self.hf_model, self.tokenizer = load_gguf_dequantized(gguf, self.dtype, cache_dir)
            self.hf_model.to(self.device)
        else:
            device_map = None if self.device == "cpu" else self.device
            self.hf_model = AutoModelForCausalLM.from_pretrained(name, dtype=self.dtype, device_map=device_map)
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.processor = self._load_processor(name)
        self.vision = self.processor is not None
        if self.dtype == torch.float16 and _is_gemma3n(getattr(self.hf_model.config, "model_type", "")):
            raise ValueError(f"{name} is a Gemma 3n model, which overflows in float16: use bfloat16 or float32")
        self.hf_model.eval()

        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._stop_ids = self._end_token_ids()
        self._json = None  # the JSON-schema constraint, built when a call first asks for one

    def _load_processor(self, name: str):
        """The image processor of a vision-language checkpoint, left-padding like the tokenizer (None: text only)."""
        if getattr(self.hf_model.config, "vision_config", None) is None:
            return None
        from transformers import AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(name)
        except (OSError, ValueError) as exc:
            log.warning("%s has a vision config but no processor could be loaded (%s): images cannot be read", name,
                        exc)
            return None
        if getattr(processor, "image_processor", None) is None or not hasattr(processor, "tokenizer"):
            return None
        processor.tokenizer.padding_side = "left"
        if processor.tokenizer.pad_token_id is None:
            processor.tokenizer.pad_token = processor.tokenizer.eos_token
        return processor

    @staticmethod
    def _gguf_path(name: str, gguf_file: str | None) -> Path | None:
        if gguf_file:
            path = Path(gguf_file).expanduser()
            if not path.is_absolute() and name != EMBEDDED:
                path = Path(name).expanduser() / gguf_file
            if not path.is_file():
                raise FileNotFoundError(f"GGUF file {str(path)!r} not found (gguf_file is a path, or a file name "
                                        f"inside the local folder named by model)")
            return path
        if name == EMBEDDED:
            return embedded_gguf()
        if name.endswith(".gguf"):
            path = Path(name).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"GGUF model {name!r} not found")
            return path
        return None

    def _end_token_ids(self) -> set[int]:
        ids = set()
        configured = getattr(self.hf_model.generation_config, "eos_token_id", None)
        if configured is not None:
            ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        end = self.tokenizer.convert_tokens_to_ids(END)
        if isinstance(end, int) and end != self.tokenizer.unk_token_id:
            ids.add(end)
        return ids

    def render(self, prompt: Prompt) -> str:
        """The text fed to the tokenizer (without ``<bos>``, which tokenizing adds)."""
        if isinstance(prompt, str):
            return prompt
        if prompt_images(prompt):
            return self._render_vision(prompt)
        messages = fold_system(prompt)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = gemma_prompt(messages)
        bos = self.tokenizer.bos_token
        return text[len(bos):] if bos and text.startswith(bos) else text

    def _render_vision(self, prompt: list) -> str:
        """A message prompt with image parts as text holding the processor's image token where each image goes."""
        if not self.vision:
            raise ValueError(f"{self.model} is a text-only model: it cannot read the image parts of a prompt; use a "
                             "vision-language model (Gemma 3 4B and up, Gemma 3n, MedGemma) with its processor")
        if getattr(self.processor, "chat_template", None):
            parts = [{**m, "content": [{"type": "image"} if p["type"] == "image" else p for p in m["content"]]}
                     if isinstance(m["content"], list) else m for m in prompt]
            text = self.processor.apply_chat_template(parts, tokenize=False, add_generation_prompt=True)
        else:
            token = self.processor.image_token
            text = gemma_prompt([{**m, "content": "".join(token if p["type"] == "image" else p["text"]
                                                          for p in m["content"])}
                                 if isinstance(m["content"], list) else m for m in prompt])
        bos = self.tokenizer.bos_token
        return text[len(bos):] if bos and text.startswith(bos) else text

    def _encode(self, texts: list[str], images: list[list[bytes]]):
        """Token ids (and pixel values, when there are images) of a left-padded batch on the model's device."""
        if not any(images):
            return self.tokenizer(texts, return_tensors="pt", padding=True).to(self.hf_model.device)
        from PIL import Image

        pictures = [[Image.open(io.BytesIO(data)).convert("RGB") for data in row] for row in images]
        bos = self.tokenizer.bos_token or ""
        enc = self.processor(text=[bos + t for t in texts], images=pictures, padding=True, return_tensors="pt",
                             add_special_tokens=False)
        return enc.to(self.hf_model.device, dtype=self.hf_model.dtype)

    def next_token_logits(self, prompt: Prompt):
        """Float32 logits of the token after ``prompt`` (a check that two loads are the same model)."""
        torch = self._torch
        enc = self.tokenizer([self.render(prompt)], return_tensors="pt").to(self.hf_model.device)
        with torch.inference_mode():
            return self.hf_model(**enc).logits[0, -1].float().cpu()

    def _generate_batch(self, prompts: list[Prompt], sampling: Sampling,
                        json_schema: dict | None) -> list[Generation]:
        texts = [self.render(p) for p in prompts]
        images = [prompt_images(p) for p in prompts]
        lengths = [len(ids) for ids in self.tokenizer(texts)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # text-only and image prompts never share a batch
        results: list[Generation | None] = [None] * len(texts)
        for kind in (False, True):
            group = [i for i in order if bool(images[i]) == kind]
            for start in range(0, len(group), self.batch_size):
                chunk = group[start:start + self.batch_size]
                outputs = self._generate_chunk([texts[i] for i in chunk], sampling, [images[i] for i in chunk],
                                               json_schema)
                for i, generation in zip(chunk, outputs):
                    results[i] = generation
        return results  # type: ignore[return-value]

    def _generate_chunk(self, texts: list[str], sampling: Sampling, images: list[list[bytes]],
                        json_schema: dict | None = None) -> list[Generation]:
        torch = self._torch
        enc = self._encode(texts, images)
        kwargs = dict(max_new_tokens=sampling.max_tokens, pad_token_id=self.tokenizer.pad_token_id,
                      eos_token_id=sorted(self._stop_ids))
        if json_schema is not None:
            kwargs["logits_processor"] = [self._constraint().processor(json_schema)]
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = self.hf_model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1]:].tolist()
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        ends = self._stop_ids | {self.tokenizer.pad_token_id}
        generations = []
        for row, n_prompt in zip(new_tokens, prompt_tokens):
            n = next((k for k, token in enumerate(row) if token in ends), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            cut = min((text.find(s) for s in sampling.stop if s in text), default=-1)
            finish = "length" if n >= sampling.max_tokens else "stop"
            if cut >= 0:
                text, finish = text[:cut], "stop"
            generations.append(Generation(text=text, prompt_tokens=int(n_prompt), completion_tokens=n,
                                          finish_reason=finish))
        return generations

    def _constraint(self):
        """The JSON-schema constraint for this tokenizer, built on first use."""
        if self._json is None:
            from curate.llm.constrain import JsonConstraint

            self._json = JsonConstraint(self.tokenizer, self.hf_model.config.get_text_config().vocab_size)
        return self._json

    def describe(self) -> dict:
        return {**super().describe(), "device": self.device, "dtype": _dtype_name(self.dtype)}

    def close(self) -> None:
        self.hf_model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
