"""The mini LM: a byte-level BPE tokenizer and a small GPT-2 pretrained on the mini world's corpus.

It stands in for GPT-2 offline. The checkpoint is cached on disk under a hash of its config, so it
is built once per machine (with a progress bar) and every cell records which one it used.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from bench.mini import world
from bench.mini.config import MINI_LMS, MiniLMConfig, cache_root
from bench.progress import Progress, tracker

EOS = "<|endoftext|>"


def ensure_pretrained(name: str, progress: Progress | None = None) -> Path:
    """The checkpoint directory of mini LM `name`, pretraining it first if it is not cached."""
    config = MINI_LMS[name]
    target = cache_root() / "mini-lm" / config.checkpoint_id(name).replace("@", "-")
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress.console.print(f"building the {name} LM (first use; cached in {target.parent})")
    building = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
    try:
        _pretrain(config, building, progress)
        os.replace(building, target)  # atomic: a crash never leaves a half-written checkpoint
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        docs, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS, model_max_length=1024
    )


def _pretrain(config: MiniLMConfig, out: Path, progress: Progress | None) -> None:
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
    (out / "pretraining.json").write_text(
        json.dumps(
            {
                "config": asdict(config),
                "world_version": world.WORLD_VERSION,
                "documents": len(docs),
                "tokens": len(ids),
                "final_loss": loss.item(),
                "seconds": round(time.time() - started, 1),
            },
            indent=2,
        )
    )
