"""Training data: an export folder read into conversations, written in Gemma's turn format, labelled for the loss.

Consumes an export artifact folder (``curate.export``: ``data/<split>-NNNNN-of-NNNNN.parquet`` in any export format,
``messages`` being the usual one); produces ``TrainingData``: per split a list of examples
``{"messages": [{role, content: str}], "images": [{bytes, path}]}`` (a row's image belongs at the start of the first
user turn, where every export format puts it), the digest of the data files (``files_digest``), and warnings.

Every backend trains on the same text: ``<bos>`` then, for each pair of turns,
``<start_of_turn>user\\n…<end_of_turn>\\n<start_of_turn>model\\n…<end_of_turn>\\n``, with system text folded into the
first user turn and each image written as the processor's image token (which the processor expands).
``assistant_labels`` keeps the loss on the assistant's tokens only: every token after ``<start_of_turn>model\\n`` up
to and including its ``<end_of_turn>``; everything else, the newline after it included, is -100. The scan works on
token ids because Gemma's tokenizer never merges the newline after ``model`` with the (stripped) answer after it.

Reasoning is trained as the export wrote it: think tags stay in the answer; a separate ``reasoning`` column (export
mode ``field``) is not trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from curate.export.formats import FORMATS, Format, think
from curate.export.summary import export_shards
from curate.llm.chat import END, START, fold_system, gemma_prompt
from curate.io import file_sha256

IGNORE = -100
RESPONSE_PART = f"{START}model\n"
INSTRUCTION_PART = f"{START}user\n"
EXAMPLE_FEATURES = datasets.Features({
    "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
    "images": datasets.List(datasets.Image()),
})


class DataError(Exception):
    """The data folder cannot be trained on; the message names the folder and the fix."""


class NoExamples(DataError):
    """The training split is there but holds no rows."""


@dataclass
class TrainingData:
    """The examples of the train and (optional) eval splits, with where they came from."""

    folder: Path
    format: str
    train: list[dict]
    eval: list[dict] | None
    digest: dict  # files_digest of the data files used
    warnings: list[str] = field(default_factory=list)

    @property
    def has_images(self) -> bool:
        return any(ex["images"] for ex in self.train + (self.eval or []))


def files_digest(folder: Path, files: list[Path]) -> dict:
    """sha256 of every data file and one sha256 over all of them (relative path and digest, sorted)."""
    total, entries = hashlib.sha256(), []
    for path in sorted(files):
        digest, rel = file_sha256(path), path.relative_to(folder).as_posix()
        total.update(f"{rel}\0{digest}\n".encode())
        entries.append({"path": rel, "bytes": path.stat().st_size, "sha256": digest})
    return {"sha256": total.hexdigest(), "files": entries}


def detect_format(columns: list[str]) -> Format:
    """The export format whose columns the table has."""
    for fmt in FORMATS.values():
        if set(fmt.columns) <= set(columns):
            return fmt
    raise DataError(f"the data has columns {', '.join(columns)}, which match no export format "
                    f"({', '.join(FORMATS)}); make the folder with `curate export`")


def _read(files: list[Path], limit: int | None) -> pa.Table:
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    return table.slice(0, limit) if limit else table


def conversation(record: dict, fmt: Format) -> dict:
    """One record of any export format as {messages (text), images}."""
    back = fmt.back(dict(record))
    messages = [dict(m) for m in back["messages"]]
    if back["reasoning"] and "reasoning" not in record:  # it came out of think tags: put it back
        messages[-1]["content"] = think(back["reasoning"], messages[-1]["content"])
    return {"messages": messages, "images": [img for img in record.get("images") or [] if img]}


def load_training_data(folder: str | Path, train_split: str = "train", eval_split: str | None = "validation",
                       max_train_rows: int | None = None, max_eval_rows: int | None = None) -> TrainingData:
    """The examples of an export folder's train and eval splits (a missing eval split is a warning)."""
    folder = Path(folder)
    splits = export_shards(folder)
    if not splits:
        raise DataError(f"{folder} has no data/<split>-NNNNN-of-NNNNN.parquet files: give an export folder made "
                        "with `curate export`")
    if train_split not in splits:
        raise DataError(f"{folder} has no split '{train_split}'; its splits are {', '.join(splits)}")
    warnings = []
    if eval_split and eval_split not in splits:
        warnings.append(f"{folder} has no split '{eval_split}' (splits: {', '.join(splits)}); training without "
                        "evaluation")
        eval_split = None
    train_table = _read(splits[train_split], max_train_rows)
    fmt = detect_format(train_table.column_names)
    train = [conversation(r, fmt) for r in train_table.to_pylist()]
    evaluation = [conversation(r, fmt) for r in _read(splits[eval_split], max_eval_rows).to_pylist()] \
        if eval_split else None
    if not train:
        raise NoExamples(f"split '{train_split}' of {folder} has no rows")
    used = splits[train_split] + (splits[eval_split] if eval_split else [])
    return TrainingData(folder, fmt.name, train, evaluation, files_digest(folder, used), warnings)


def gemma_turns(messages: list[dict], image_token: str | None = None, n_images: int = 0) -> str:
    """A conversation in Gemma's turn format (no ``<bos>``), images as ``image_token`` at the top of the first user
    turn."""
    messages = fold_system(messages)
    if n_images:
        if not image_token:
            raise DataError("an example has images but the model has no image token: use a vision recipe with a "
                            "vision-language model")
        first = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[first] = {**messages[first], "content": image_token * n_images + messages[first]["content"]}
    return gemma_prompt(messages, add_generation_prompt=False)


@dataclass(frozen=True)
class TurnMarkers:
    """Token ids that delimit an assistant turn: ``<start_of_turn>``, ``model\\n`` and ``<end_of_turn>``."""

    start: int
    model: tuple[int, ...]
    end: int

    @classmethod
    def of(cls, tokenizer) -> "TurnMarkers":
        ids = [tokenizer.convert_tokens_to_ids(t) for t in (START, END)]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise DataError(f"the tokenizer has no {START} / {END} tokens: it is not a Gemma tokenizer")
        model = tuple(tokenizer("model\n", add_special_tokens=False)["input_ids"])
        return cls(ids[0], model, ids[1])


def assistant_labels(ids: list[int], markers: TurnMarkers) -> list[int]:
    """``ids`` where assistant tokens are (answer and its ``<end_of_turn>``), -100 elsewhere."""
    labels, n, width = [IGNORE] * len(ids), len(ids), len(markers.model)
    i = 0
    while i < n:
        if ids[i] == markers.start and tuple(ids[i + 1:i + 1 + width]) == markers.model:
            i += 1 + width
            while i < n:
                labels[i] = ids[i]
                if ids[i] == markers.end:
                    break
                i += 1
        i += 1
    return labels


def tokenize_text(examples: list[dict], tokenizer) -> datasets.Dataset:
    """Text examples as a dataset of ``input_ids`` and assistant-only ``labels`` (not yet cut to a length)."""
    markers, bos = TurnMarkers.of(tokenizer), tokenizer.bos_token or ""
    input_ids, labels = [], []
    for ex in examples:
        ids = tokenizer(bos + gemma_turns(ex["messages"]), add_special_tokens=False)["input_ids"]
        input_ids.append(ids)
        labels.append(assistant_labels(ids, markers))
    return datasets.Dataset.from_dict({"input_ids": input_ids, "labels": labels})


def image_dataset(examples: list[dict]) -> datasets.Dataset:
    """Examples with images as a dataset whose ``images`` decode to PIL images."""
    return datasets.Dataset.from_list(examples, features=EXAMPLE_FEATURES)


class VisionCollator:
    """Batches {messages, images} examples for a vision-language model: renders the turns with the processor's image
    token, runs the processor (pixel values, expanded image tokens, token types) and adds assistant-only labels.

    Vision rows are never cut to a length: a cut could split an image's tokens from its pixels.
    """

    def __init__(self, processor):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.markers = TurnMarkers.of(self.tokenizer)
        self.image_token = getattr(processor, "image_token", None)

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        bos = self.tokenizer.bos_token or ""
        texts = [bos + gemma_turns(r["messages"], self.image_token, len(r["images"])) for r in rows]
        images = [[img.convert("RGB") for img in r["images"]] for r in rows]
        batch = self.processor(text=texts, images=images if any(images) else None, padding=True,
                               return_tensors="pt", add_special_tokens=False)
        labels = [assistant_labels(ids, self.markers) for ids in batch["input_ids"].tolist()]
        batch["labels"] = torch.tensor(labels).masked_fill(batch["attention_mask"] == 0, IGNORE)
        return batch
