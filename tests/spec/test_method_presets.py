"""The paper presets: Table 5 hyperparameters per task and method, and the decoding settings."""

from __future__ import annotations

import pytest
import torch

from bench.engine.generation import beam_search, newline_tokens
from bench.engine.loading import load_model
from bench.errors import UserError
from bench.spec.grid import expand, load_grid
from bench.spec.registry import METHODS
from bench.spec.settings import DecodeConfig


def test_table1_has_each_method_once_per_task_with_its_hyperparameters():
    spec, _ = load_grid("paper-table1", model_override="random:gpt2-medium")
    cells = expand(spec)
    assert len(cells) == 3 * 5
    by = {(c.task, c.label): c for c in cells}
    assert {label for _, label in by} == {"FT", "FT-top2", "adapter 3%", "adapter 0.1%", "prefix"}
    prefix = by[("e2e", "prefix")]
    assert (prefix.train.lr, prefix.train.epochs, prefix.train.batch_size) == (8e-5, 5, 10)
    assert by[("dart", "prefix")].settings["length"] == 10
    assert by[("webnlg", "FT-top2")].train.batch_size == 9
    assert by[("dart", "adapter 0.1%")].train.lr == 8e-5
    assert by[("webnlg", "FT")].train.lr == 1e-5
    assert prefix.decode.num_beams == 5 and prefix.decode.no_newlines


def test_xsum_and_hybrid_presets():
    xsum = expand(load_grid("paper-xsum")[0])
    assert {c.settings.get("length") for c in xsum} == {None, 100, 5}
    assert all(c.decode.length_penalty == 0.8 and c.decode.max_new_tokens == 62 for c in xsum)
    cocktails = expand(load_grid("cocktails")[0])
    assert [c.method for c in cocktails] == ["finetune", "prefix", "ensemble", "cocktail"]
    mini = expand(load_grid("mini-full")[0])
    ours = {name for name in METHODS.names() if METHODS.get(name).source == "bench"}
    assert {c.method for c in mini} == ours  # PEFT's are in peft-zoo
    entries = len(ours) + 1  # every method once, the adapter twice (Houlsby, Pfeiffer)
    assert len(mini) == 2 * entries  # on two tasks


def test_a_method_restricted_to_a_task_the_grid_lacks_is_an_error(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nmodel: mini-tiny\ntasks: [{name: mini-e2e}]\n"
        "methods: [{name: finetune, tasks: [mini-webnlg]}]\n"
    )
    with pytest.raises(UserError, match=r"methods\.0\.tasks: 'mini-webnlg' is not a task"):
        load_grid(str(path))


class Favourite:
    """A scorer that always prefers token 5, then token 7, and ends after three tokens."""

    def __init__(self) -> None:
        self.length = 0

    def _logprobs(self, rows: int) -> torch.Tensor:
        scores = torch.full((rows, 10), -10.0)
        scores[:, 5], scores[:, 7] = 0.0, -1.0
        if self.length >= 3:
            scores[:, 0] = 1.0
        return torch.log_softmax(scores, dim=-1)

    def prefill(self, input_ids, attention_mask):
        return self._logprobs(len(input_ids))

    def expand(self, times):
        pass

    def step(self, tokens):
        self.length += 1
        return self._logprobs(len(tokens))

    def reorder(self, rows):
        pass


def test_banned_tokens_are_never_emitted_and_newlines_are_found():
    ids, mask = torch.ones((1, 2), dtype=torch.long), torch.ones((1, 2), dtype=torch.long)
    config = DecodeConfig(num_beams=2, max_new_tokens=6)
    assert beam_search(Favourite(), ids, mask, 0, config)[0].tokens == [5, 5, 5]
    assert beam_search(Favourite(), ids, mask, 0, config, banned=[5])[0].tokens == [7, 7, 7]
    tokenizer = load_model("mini-tiny", seed=0).tokenizer
    banned = newline_tokens(tokenizer)
    assert banned and all("\n" in tokenizer.decode([i]) for i in banned)
    assert tokenizer.encode(" a pub") and not set(tokenizer.encode(" a pub")) & set(banned)
