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
