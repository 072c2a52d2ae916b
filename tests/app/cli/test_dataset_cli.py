"""``zooscope dataset``: the JSON summary, and bad input as one message."""

from __future__ import annotations

import json

from app.cli.main import main


def test_dataset_json_summary(capsys):
    code = main(["dataset", "--model", "vit-dot", "--limit", "8", "--workers", "1", "--chunk", "4", "--json",
                 "--param", "n_steps=4", "--param", "faithfulness=integrated_gradients", "--param", "curve_steps=4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["examples"] == 8 and summary["dataset"] == "heldout"
    assert 0 <= summary["accuracy_ci95"][0] <= summary["accuracy"] <= summary["accuracy_ci95"][1] <= 1
    assert set(summary["mean_deletion_auc"]) == {"integrated_gradients"}
    assert all(v is None or round(v, 6) == v for v in summary["class_attribution_sum"].values())
    assert "examples/s" in err


def test_bad_input_is_one_message(capsys, tmp_path):
    assert main(["dataset", "--model", "vae-2d", "--limit", "2"]) == 2
    assert "needs an image classifier" in capsys.readouterr().err
    assert main(["dataset", "--model", "vit-dot", "--dataset", str(tmp_path / "none"), "--limit", "2"]) == 2
    assert "no dataset" in capsys.readouterr().err
    assert main(["dataset", "--model", "vit-dot", "--param", "n_steps=1", "--limit", "2"]) == 2
    assert "n_steps" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("text,label\nhi,pos\n")
    assert main(["dataset", "--model", "vit-dot", "--dataset", str(tmp_path / "t.csv"), "--limit", "2"]) == 2
    assert "no text classifier" in capsys.readouterr().err


def test_text_dataset_json_and_label_check(capsys, tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label,source\n"A wonderful, moving film.",positive,web\n"Dull and far too long.",negative,'
                    'mail\n"I loved every minute.",positive,web\n')
    args = ["dataset", "--model", "minilm-sentiment", "--workers", "1", "--chunk", "2", "--json", "--param",
            "n_steps=4"]
    assert main([*args, "--dataset", str(path), "--limit", "3"]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 3 and summary["labelled"] == 3 and summary["dataset"] == "reviews"
    assert set(summary["class_top_words"]) == {"negative", "positive"}
    assert "methods_ranked" not in summary and len(summary["confusion"]) == 2
    (tmp_path / "bad.jsonl").write_text('{"text": "fine", "label": "pos"}\n')
    assert main([*args, "--dataset", str(tmp_path / "bad.jsonl")]) == 2
    assert "label 'pos' is not one of the model's labels (negative, positive)" in capsys.readouterr().err
    assert main([*args, "--dataset", str(tmp_path)]) == 2
    assert "reads a .csv or .jsonl" in capsys.readouterr().err


def test_heldout_sentences(capsys):
    code = main(["dataset", "--model", "minilm-sentiment", "--dataset", "heldout", "--limit", "4", "--workers", "1",
                 "--json", "--param", "n_steps=4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["examples"] == summary["labelled"] == 4 and summary["dataset"] == "heldout"
