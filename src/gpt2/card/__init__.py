"""Model cards: a checkpoint described in the structure of OpenAI's GPT-2 model card, from recorded facts only.

The facts come from files, never from guesses: `config.json` (sizes; parameter count from its shapes), the
training metadata `gpt2 train` saves with a checkpoint (`config.json`'s "gpt2" key, `training_state.pt`)
and in its run directory (`train_config.json`), the `manifest.json` of the prepared data the run read, the
`results.json` of `gpt2 eval` and the `bias.json` of `gpt2 bias`. A fact no file holds is null in
`model_card.json`, listed under "not_recorded", and written "not recorded" in `model_card.md`.

    from gpt2.card import build_card, render_markdown
    card = build_card("runs/mini/checkpoint", results=["results/mini/results.json"])
    print(render_markdown(card))

The fixed text (intended uses, out-of-scope uses, limitations) paraphrases OpenAI's GPT-2 model card
(github.com/openai/gpt-2, model_card.md) and the paper (Radford et al., 2019).

Modules: `facts` (the card's dataclasses; model_card.json), `build` (reading the files), `markdown`
(model_card.md; `write_card`), `text` (the fixed prose).
"""

from gpt2.bias.report import BiasDimension, BiasProbes, read_bias
from gpt2.card.build import (
    TRAIN_FIELDS,
    build_card,
    evaluations,
    find_bias,
    locate,
    model_facts,
    training_data,
    training_facts,
)
from gpt2.card.facts import Card, Evaluation, ModelFacts, PreparedData, TrainingData, TrainingFacts
from gpt2.card.markdown import CARD_JSON, CARD_MD, render_markdown, write_card
from gpt2.card.text import HUB_FACTS, INTENDED_USES, LIMITATIONS, NOT_RECORDED, OUT_OF_SCOPE, PAPER, UNSET
from gpt2.data.manifest import DataInput, Manifest
from gpt2.evaluation.report import read_results

__all__ = [
    "BiasDimension",
    "BiasProbes",
    "CARD_JSON",
    "CARD_MD",
    "Card",
    "DataInput",
    "Evaluation",
    "HUB_FACTS",
    "INTENDED_USES",
    "LIMITATIONS",
    "Manifest",
    "ModelFacts",
    "NOT_RECORDED",
    "OUT_OF_SCOPE",
    "PAPER",
    "PreparedData",
    "TRAIN_FIELDS",
    "TrainingData",
    "TrainingFacts",
    "UNSET",
    "build_card",
    "evaluations",
    "find_bias",
    "locate",
    "model_facts",
    "read_bias",
    "read_results",
    "render_markdown",
    "training_data",
    "training_facts",
    "write_card",
]
