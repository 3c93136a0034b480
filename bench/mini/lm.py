"""The mini LM: a byte-level BPE tokenizer and a small GPT-2 pretrained on the mini world's corpus.

It stands in for GPT-2 offline. Its weights ship with the package (`bench.mini.config`): loading
one never pretrains, it checks the files against their manifest's digest. `build` reruns the
recipe on one CPU thread, where the float sums, and so the weights, are the same on every run
(`python -m bench mini-lm build NAME`); `check` reruns it beside the shipped files and lists
what differs (`python -m bench mini-lm check NAME`, a slow test).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from bench.errors import UserError
from bench.mini import world
from bench.mini.config import MANIFEST, MINI_LMS, MiniLMConfig, manifest, shipped_dir
from bench.progress import Progress, tracker

EOS = "<|endoftext|>"
LEARNED = ("model.safetensors", "tokenizer.json")  # what the weights' digest covers


def weights_digest(folder: Path) -> str:
    """sha256 over the learned files (not config.json, whose bytes name the transformers
    version that wrote it)."""
    digest = hashlib.sha256()
    for name in LEARNED:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()


def checkpoint_dir(name: str) -> Path:
    """The shipped checkpoint of mini LM `name`, verified against its manifest."""
    folder = shipped_dir(name)
    if weights_digest(folder) != manifest(name)["weights_sha256"]:
        raise UserError(
            f"the {name} LM's files in {folder} do not match their manifest's digest (changed "
            f"or damaged); reinstall bench, or rebuild them: python -m bench mini-lm build {name}"
        )
    return folder


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build(name: str, out: Path, progress: Progress | None = None) -> Path:
    """Pretrain mini LM `name` from its recipe on one thread into `out` (replaced whole, only
    once the new checkpoint is complete), with its manifest."""
    config = MINI_LMS[name]
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".building-{name}-"))
    old = out.parent / f".replaced-{name}"
    try:
        with one_thread():
            stats = _pretrain(config, building, progress)
        shipped = {
            "recipe": config.recipe(),
            "recipe_hash": config.recipe_hash(),
            "weights_sha256": weights_digest(building),
            "threads": 1,
            "torch": torch.__version__,
            **stats,
        }
        (building / MANIFEST).write_text(json.dumps(shipped, indent=2) + "\n")
        for path in [building, *building.iterdir()]:  # as readable as the package around them
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out.exists():
            os.replace(out, old)
        os.replace(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def check(name: str, progress: Progress | None = None) -> list[str]:
    """Rebuild `name` in a temporary folder: each way the result differs from the shipped
    checkpoint (empty when the recipe reproduces it exactly)."""
    shipped = checkpoint_dir(name)
    with tempfile.TemporaryDirectory(prefix="bench-mini-lm-") as tmp:
        rebuilt = build(name, Path(tmp) / name, progress)
        differences = []
        if (rebuilt / "tokenizer.json").read_bytes() != (shipped / "tokenizer.json").read_bytes():
            differences.append("tokenizer.json differs")
        ours, theirs = load_file(rebuilt / LEARNED[0]), load_file(shipped / LEARNED[0])
        for key in sorted(ours.keys() | theirs.keys()):
            if key not in ours or key not in theirs or ours[key].shape != theirs[key].shape:
                differences.append(f"{key}: present or shaped differently")
            elif not torch.equal(ours[key], theirs[key]):
                gap = (ours[key] - theirs[key]).abs().max().item()
                differences.append(f"{key}: max |difference| {gap:.3g}")
    return differences


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        docs, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS, model_max_length=1024
    )


def _pretrain(config: MiniLMConfig, out: Path, progress: Progress | None) -> dict[str, object]:
    torch.manual_seed(config.seed)
    docs = world.pretraining_corpus(config.seed, config.entities_per_domain, config.infobox_share)
    tokenizer = train_tokenizer(docs, config.vocab_size)
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer.encode(doc))
        ids.append(tokenizer.eos_token_id)
    data = torch.tensor(ids)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=config.n_positions,
            n_embd=config.n_embd,
            n_layer=config.n_layer,
            n_head=config.n_head,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    warmup = max(1, config.steps // 20)

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / (config.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.time()
    model.train()
    with tracker(progress, "pretraining the mini LM", config.steps) as advance:
        for _ in range(config.steps):
            starts = torch.randint(
                0, len(data) - config.seq_len - 1, (config.batch_size,), generator=generator
            )
            batch = torch.stack([data[s : s + config.seq_len] for s in starts])
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            advance(1, loss=loss.item())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "documents": len(docs),
        "tokens": len(ids),
        "final_loss": loss.item(),
        "seconds": round(time.time() - started, 1),
    }
