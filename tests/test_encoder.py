"""The encoder (RoBERTa) classifier and OpenAI's released detector, offline: a tiny random RoBERTa with a
byte-level BPE vocabulary made in the test stands in for roberta-base, and a checkpoint in OpenAI's file
layout (transformers 2.x keys) is built from it and served over loopback HTTP."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from gpt2.cli import main
from gpt2.detection import DetectorError, EncoderClassifierDetector, load_detector, make_detector
from gpt2.detection.encoder import map_openai_state_dict

transformers = pytest.importorskip("transformers", reason="the encoder classifier needs transformers")

# Human-like and machine-like texts that a tiny model can tell apart from their words alone.
HUMAN = [f"my neighbour {w} the garden fence on sunday and we talked about rain" for w in
         ("painted", "fixed", "measured", "cleaned", "moved", "checked", "sanded", "mended")]
MACHINE = [f"the algorithm {w} the dataset with remarkable efficiency and unprecedented scale" for w in
           ("processed", "optimized", "analyzed", "transformed", "indexed", "compressed", "sorted", "parsed")]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A directory that transformers' Auto classes load: a 2-layer, 32-wide RoBERTa and its tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    d = tmp_path_factory.mktemp("tiny-roberta")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(HUMAN + MACHINE, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))  # <s> text </s>, as roberta-base's
    bpe.save(str(d / "tokenizer.json"))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(d / "tokenizer.json"), bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>", model_max_length=62)
    tokenizer.save_pretrained(d)
    config = transformers.RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                        type_vocab_size=1, num_labels=2)
    torch.manual_seed(0)
    transformers.RobertaForSequenceClassification(config).save_pretrained(d)
    return d


def trained(backbone) -> EncoderClassifierDetector:
    det = make_detector("encoder-classifier", backbone=str(backbone), lr=3e-3, batch_size=4, max_epochs=6,
                        device="cpu")
    assert isinstance(det, EncoderClassifierDetector)
    return det.fit(HUMAN[:6], MACHINE[:6], valid=(HUMAN[6:], MACHINE[6:]))


def test_fine_tuned_encoder_separates_and_reloads(backbone, tmp_path):
    det = trained(backbone)
    scores = det.score(HUMAN + MACHINE)
    assert scores.shape == (16,) and np.all((scores >= 0) & (scores <= 1))
    assert scores[8:].min() > scores[:8].max(), scores  # every machine text above every human one
    assert det.info["best_epoch"] >= 1 and "valid_accuracy" in det.info["epochs"][0]
    det.save(tmp_path / "det")
    again = load_detector(tmp_path / "det", device="cpu")
    assert type(again) is EncoderClassifierDetector and again.config() == det.config()
    np.testing.assert_allclose(again.score(HUMAN + MACHINE), scores, rtol=1e-5, atol=1e-6)


def test_scores_are_openais_fake_probability_of_the_whole_text(backbone):
    """score() reads a text as OpenAI's server does: <s> + its first tokens (as many as the context holds)
    + </s>, one forward, softmax, the probability of label 0 ("fake")."""
    det = EncoderClassifierDetector(backbone=str(backbone), device="cpu")
    det._load(backbone)
    long_text = " ".join(MACHINE)  # longer than the 60-token context: cut, not an error
    tok, model = det.tokenizer, det.model
    for text in (HUMAN[0], long_text):
        ids = tok.encode(text, add_special_tokens=False)[: tok.model_max_length - 2]
        with torch.no_grad():
            logits = model(torch.tensor([[tok.bos_token_id, *ids, tok.eos_token_id]])).logits
        fake, _real = logits.softmax(-1)[0].tolist()
        assert det.score([text])[0] == pytest.approx(fake, abs=1e-6)


def openai_layout(model) -> dict[str, torch.Tensor]:
    """`model`'s weights as transformers 2.x saved RobertaForSequenceClassification: a pooler (which the
    head never reads) and no position_ids buffer."""
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "roberta.embeddings.position_ids"}
    width = model.config.hidden_size
    state["roberta.pooler.dense.weight"] = torch.randn(width, width)
    state["roberta.pooler.dense.bias"] = torch.randn(width)
    return state


def test_openai_checkpoint_loads_through_the_mapping_with_equal_outputs(backbone, file_server, tmp_path):
    det = trained(backbone)  # stands in for OpenAI's fine-tuned roberta-base
    state = openai_layout(det.model)
    fresh = transformers.AutoModelForSequenceClassification.from_pretrained(backbone)
    with pytest.raises(RuntimeError, match="roberta.pooler"):
        fresh.load_state_dict(state)  # the wall users hit with current transformers (issues #28, #47)
    served = file_server.root / "gpt-2/detector-models/v1/detector-base.pt"
    served.parent.mkdir(parents=True)
    torch.save({"epoch": 3, "model_state_dict": state, "args": {"large": False, "learning_rate": 2e-5}}, served)

    out = tmp_path / "openai-base"
    assert main(["detect", "load-openai", "base", "--out", str(out), "--config", str(backbone),
                 "--no-progress"]) == 0
    assert file_server.requests == [("GET", "/gpt-2/detector-models/v1/detector-base.pt", None)]
    loaded = load_detector(out, device="cpu")
    assert loaded.info["sha256"] and loaded.info["source"].endswith("detector-base.pt")
    texts = HUMAN + MACHINE + [" ".join(HUMAN)]
    np.testing.assert_allclose(loaded.score(texts), det.score(texts), rtol=1e-5, atol=1e-6)
    # a second load needs no download: the checkpoint is in the cache
    assert main(["detect", "load-openai", "base", "--out", str(tmp_path / "again"), "--config", str(backbone),
                 "--no-progress"]) == 0
    assert len(file_server.requests) == 1


def test_the_mapping_refuses_another_architecture(backbone):
    model = transformers.AutoModelForSequenceClassification.from_pretrained(backbone)
    state = openai_layout(model)
    state["roberta.encoder.layer.0.attention.self.query.weight"] = torch.zeros(8, 8)
    del state["classifier.out_proj.bias"]
    with pytest.raises(DetectorError, match=r"missing \['classifier.out_proj.bias'\].*other shapes"):
        map_openai_state_dict(state, model)


def test_cli_trains_evaluates_and_scores_with_a_backbone(backbone, tmp_path, capsys):
    for name, texts in (("real", HUMAN), ("fake", MACHINE)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert main(["detect", "train", "--detector", "encoder-classifier", "--backbone", str(backbone), "--real",
                 str(tmp_path / "real.jsonl"), "--fake", str(tmp_path / "fake.jsonl"), "--epochs", "6", "--lr",
                 "3e-3", "--batch-size", "4", "--device", "cpu", "--out", str(tmp_path / "det")]) == 0
    assert json.loads(capsys.readouterr().out)["detector"] == "encoder-classifier"
    assert main(["detect", "eval", str(tmp_path / "det"), "--real", str(tmp_path / "real.jsonl"), "--fake",
                 str(tmp_path / "fake.jsonl"), "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["auroc"] == 1.0
    assert main(["detect", "score", str(tmp_path / "det"), MACHINE[0]]) == 0
    assert json.loads(capsys.readouterr().out)["machine"] is True


def test_the_server_reports_the_encoder_detectors_probability(backbone, tmp_path):
    from fastapi.testclient import TestClient

    from gpt2.config import GPTConfig
    from gpt2.model import GPT
    from gpt2.server import create_app
    from gpt2.tokenizer import Tokenizer

    det = trained(backbone)
    det.save(tmp_path / "det")
    tokenizer = Tokenizer.train(HUMAN + MACHINE, vocab_size=300)
    model = GPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size)).eval()
    with TestClient(create_app(model, tokenizer, detector=load_detector(tmp_path / "det", device="cpu"))) as client:
        body = client.post("/v1/detect", json={"text": MACHINE[0]}).json()
    assert body["detector"]["name"] == "encoder-classifier"
    assert body["detector"]["score"] == pytest.approx(float(det.score([MACHINE[0]])[0]), abs=1e-6)


def test_without_transformers_the_error_names_the_extra(backbone, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now fails
    det = make_detector("encoder-classifier", backbone=str(backbone))
    with pytest.raises(DetectorError, match=r"pip install 'gpt2\[detect\]'"):
        det.fit(HUMAN, MACHINE)


def test_a_backbone_is_the_encoder_classifiers_not_a_silent_switch(backbone, tmp_path, capsys):
    """`classifier` fine-tunes a GPT-2 checkpoint; asking it for an encoder backbone is an error that
    names the detector that has one, in the library and on the command line."""
    with pytest.raises(DetectorError, match=r"make_detector\('encoder-classifier', backbone="):
        make_detector("classifier", backbone=str(backbone))
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": HUMAN[0]}) + "\n")
    assert main(["detect", "train", "--detector", "classifier", "--backbone", str(backbone), "--real",
                 str(tmp_path / "t.jsonl"), "--fake", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "d")]) == 2
    assert "--detector encoder-classifier" in capsys.readouterr().err
