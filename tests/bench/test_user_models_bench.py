"""Smoke test of ``bench/user_models.py`` (``zooscope bench user``) on 2-layer, hidden-32 models.

The real run builds ViT-B/16 and BERT-base; here the same path (save_pretrained into a folder, the zoo's
folder loader, the analyzers, the floor, the memory reading) runs on tiny configs in this process.
"""

from __future__ import annotations

import json

import pytest

from bench import user_models as um

ROW_FIELDS = {"case", "analysis", "tokens", "path_points", "analysis_s", "first_s", "floor_s", "ratio", "evaluations",
              "floor_evaluations", "passes", "analysis_peak_mb", "first_peak_mb", "floor_peak_mb", "runs", "memory", "threads", "parameters"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("bench-user")
    return {"vit": um.write_vit(tmp / "vit", tiny=True), "bert": um.write_bert(tmp / "bert", tiny=True)}


def test_text_has_exactly_the_tokens_asked_for(folders):
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(folders["bert"])
    for n in (16, 128, 512):
        assert len(tok(um.text_of(n))["input_ids"]) == n
    assert tok.model_max_length == 64  # tiny; the real folder says 512


@pytest.mark.parametrize("case,analysis,points", [("vit-b16", "integrated_gradients", 6),
                                                  ("bert-128", "integrated_gradients", 6),
                                                  ("bert-512", "attention_maps", 1)])
def test_run_case_measures_the_analysis_and_its_floor(folders, case, analysis, points):
    folder = folders["vit" if case == "vit-b16" else "bert"]
    row = um.run_case(str(folder), case, analysis, 6, 1, tiny=True)
    assert ROW_FIELDS <= set(row)
    assert row["case"] == case and row["analysis"] == analysis and row["path_points"] == points
    assert row["tokens"] == {"vit-b16": 17, "bert-128": 16, "bert-512": 32}[case]  # 4x4 patches + [CLS]; texts
    assert row["analysis_s"] > 0 and row["floor_s"] > 0 and row["first_s"] > 0
    assert row["ratio"] == pytest.approx(row["analysis_s"] / row["floor_s"])
    assert row["runs"] == um.CHEAP_REPEAT  # tiny calls take milliseconds: timed 5 times, the fastest counts
    # the analysis runs the model on at least every path point, and not on many more
    assert points <= row["evaluations"] <= points + 4
    assert row["floor_evaluations"] == points and 1 <= row["passes"] <= row["evaluations"]
    assert row["analysis_peak_mb"] >= 0 and row["floor_peak_mb"] >= 0
    assert row["memory"] in ("VmHWM after clear_refs", "ru_maxrss growth")
    assert row["parameters"] > 1000


def test_floor_takes_gradients_over_the_path(folders):
    import model_zoo

    name = model_zoo.register_folders([folders["bert"]])[0]
    model, spec = model_zoo.load(name, "cpu"), model_zoo.get_spec(name)
    run = um._floor(model, spec, um.text_of(16), 5)  # finds the target class first
    with um.RowCounter(model.hf) as counter:
        run()
    assert counter.rows == 5  # one batched pass of 5 path points


def test_main_prints_a_table_and_json(folders, monkeypatch, capsys):
    calls = []

    def child(folder, case, analysis, steps, repeat, tiny, threads):
        calls.append((case, analysis, steps))
        return um.run_case(str(folder), case, analysis, steps, repeat, tiny)

    monkeypatch.setattr(um, "_child", child)
    assert um.main(["--tiny", "--cases", "bert-512", "--analyses", "integrated_gradients", "--steps-512", "3",
                    "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert calls == [("bert-512", "integrated_gradients", 3)]
    assert {"rows", "load_start", "load_end", "loadavg_end", "seconds", "goal"} <= set(report)
    assert report["tiny"] is True and len(report["rows"]) == 1 and len(report["loadavg_end"]) == 3
    assert um.main(["--tiny", "--cases", "vit-b16", "--analyses", "attention_maps"]) == 0
    out = capsys.readouterr().out
    assert "load average" in out and "| vit-b16 | 17 | attention_maps | 1 |" in out and "goal <= 1.3" in out and " in 1 (1) |" in out


def test_bad_arguments_get_one_clear_message(capsys):
    assert um.main(["--cases", "gpt-5"]) == 2
    err = capsys.readouterr().err
    assert "gpt-5" in err and "vit-b16" in err and "Traceback" not in err
    assert um.main(["--steps", "1"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_cli_has_the_user_suite():
    from app.cli.main import parser

    args = parser().parse_args(["bench", "user", "--tiny"])
    assert args.suite == "user" and args.rest == ["--tiny"]


def test_a_failing_case_gets_one_line_not_a_traceback(monkeypatch, capsys, tmp_path):
    import subprocess

    def failed(*args, **kwargs):
        return subprocess.CompletedProcess(args, -9, stdout="", stderr="Traceback ...\nMemoryError: 3 GB\n")

    monkeypatch.setattr(um, "write_vit", lambda folder, tiny=False: folder)
    monkeypatch.setattr(um.subprocess, "run", failed)
    assert um.main(["--tiny", "--cases", "vit-b16", "--analyses", "attention_maps"]) == 1
    err = capsys.readouterr().err
    assert "vit-b16 / attention_maps failed with exit code -9 (killed: out of memory?): MemoryError: 3 GB" in err
    assert "Traceback" not in err and "--cases vit-b16 --analyses attention_maps" in err
