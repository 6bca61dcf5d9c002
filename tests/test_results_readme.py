"""results/README.md: statements computed from the CSV files."""

from __future__ import annotations

import pandas as pd

from alkd import results_readme


def _table1(tmp_path):
    rows = []
    for bb, ours, best, star in [
        ("fpmc", 0.02, 0.01, True),
        ("stamp", 0.01, 0.03, False),
    ]:
        for method, mean, n in [("ALKDRec", ours, 3), ("DSL", best, 3), ("DE", 0.0, 1)]:
            rows.append(
                {
                    "dataset": "ML",
                    "backbone": bb,
                    "method": method,
                    "metric": "recall@10",
                    "mean": mean,
                    "std": 0.001,
                    "n_seeds": n,
                    "paper": 0.02,
                    "best_baseline": "DSL",
                    "best_baseline_mean": best,
                    "alkdrec_mean": ours,
                    "star": star,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "table1_main.csv", index=False)


def test_table1_statements_count_wins_stars_and_thin_rows(tmp_path):
    _table1(tmp_path)
    text = results_readme.build(tmp_path, "quick")
    assert "ahead of the best KD baseline in 1 of 2" in text
    assert "significantly (Welch t-test over seeds, p < 0.05) in 1 " in text
    assert "ML/fpmc/DE (1)" in text and "ML/stamp/DE (1)" in text
    assert "no KD-baseline cells yet for ML/attmix" in text
    assert "ML/fpmc: no cells yet for DLLM2Rec, FTD, HTD, unKD" in text


def test_teacher_quality_verdict_compares_forced_sets(tmp_path):
    base = {"dataset": "ML", "hit@1": 0, "hit@10": 0, "hit@25": 0, "ndcg@25": 0}
    base |= {"label_in_candidates": 1.0, "n_sessions": 300}
    rows = [
        base
        | {
            "teacher": "gpt-4-turbo (recorded)",
            "score": "-",
            "candidates": "authors",
            "hit@5": 0.15,
        },
        base
        | {
            "teacher": "smollm2 lora",
            "score": "pmi",
            "candidates": "forced",
            "hit@5": 0.12,
        },
        base
        | {
            "teacher": "smollm2 lora",
            "score": "pmi",
            "candidates": "plain",
            "hit@5": 0.5,
        },  # plain sets are not what GPT-4 saw
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "teacher_quality.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert "hit@5 0.120 vs GPT-4-turbo 0.150: worse" in text


def test_tuning_section_names_the_chosen_and_the_open_grids(tmp_path):
    rows = [
        {"method": "ftd", "options": "kd_weight=0.0001", "best": False},
        {"method": "ftd", "options": "kd_weight=0.001", "best": True},
        {"method": "htd", "options": "kd_weight=0.001", "best": False},
    ]
    for row in rows:
        row |= {"dataset": "ML", "backbone": "fpmc", "seed": 0}
        row |= {"valid_recall@10": 0.1, "valid_ndcg@10": 0.05, "test_recall@10": 0.1}
    pd.DataFrame(rows).to_csv(tmp_path / "table1_tuning.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert "- Chosen: ftd: kd_weight=0.001." in text
    assert "Grid incomplete for htd: Table 1 runs its defaults." in text


def test_local_table2_section_says_what_it_covers(tmp_path):
    rows = [
        {
            "dataset": "ML",
            "backbone": "fpmc",
            "strategy": s,
            "metric": "recall@10",
            "mean": 0.01,
            "std": 0.0,
            "n_seeds": n,
            "paper": 0.02,
        }
        for s, n in [("alkdrec", 1), ("random", 3)]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "table2_ablation_local.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert "## Table 2 with the local LLM teacher" in text
    assert "Cells computed (seeds): ML/fpmc/alkdrec (1), ML/fpmc/random (3)." in text


def test_table2_says_how_often_distillation_kept_the_student(tmp_path):
    rows = [
        {
            "dataset": "ML",
            "backbone": bb,
            "strategy": s,
            "metric": m,
            "mean": 0.01,
            "std": 0.0,
            "n_seeds": 3,
            "paper": 0.02,
            "kept_student": kept,
            "effective": 0.2,
            "similar": 0.3,
            "incorrect": 0.5,
            "difficulty_percentile": 40.0,
        }
        for bb, s, kept in [
            ("fpmc", "tr", 1.0),
            ("fpmc", "alkdrec", 2 / 3),
            ("stamp", "alkdrec", 0.0),
        ]
        for m in ("recall@10", "ndcg@10")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "table2_ablation.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert "kept the starting Student in 5 of 9 strategy-seed cells" in text
    assert "ML/fpmc 5 of 6, ML/stamp 0 of 3." in text
    selected = text.split("## What each strategy selected", 1)[1]
    header = next(x for x in selected.splitlines() if x.startswith("| dataset"))
    assert header.split("|")[-2].strip() == "kept_student"


def test_local_table2_compares_alkdrec_with_its_rivals_and_with_gpt4(tmp_path):
    def row(bb, strategy, mean):
        return {
            "dataset": "ML",
            "backbone": bb,
            "strategy": strategy,
            "metric": "recall@10",
            "mean": mean,
            "std": 0.0,
            "n_seeds": 3,
            "paper": 0.02,
        }

    local = [
        row("fpmc", "tr", 0.010),
        row("fpmc", "random", 0.012),
        row("fpmc", "alkdrec", 0.011),
        row("stamp", "tr", 0.005),
        row("stamp", "random", 0.004),
        row("stamp", "alkdrec", 0.006),
    ]
    recorded = [row("fpmc", "alkdrec", 0.020), row("stamp", "alkdrec", 0.001)]
    pd.DataFrame(local).to_csv(tmp_path / "table2_ablation_local.csv", index=False)
    pd.DataFrame(recorded).to_csv(tmp_path / "table2_ablation.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert (
        "- recall@10: with the local teacher ALKDRec has the highest mean of "
        "alkdrec, tr, random in 1 of 2 dataset-backbone cells, and is above TR "
        "in 2 of 2; it is above ALKDRec with the recorded GPT-4 answers in 1 of 2."
    ) in text
    assert "- ndcg@10: with the local teacher" not in text  # no ndcg rows


def test_local_table1_counts_wins_and_compares_the_llm_rows_with_gpt4(tmp_path):
    def row(bb, method, mean, alkdrec, best, star):
        return {
            "dataset": "ML",
            "backbone": bb,
            "method": method,
            "metric": "recall@10",
            "mean": mean,
            "std": 0.0,
            "n_seeds": 3,
            "paper": 0.02,
            "best_baseline": "DSL",
            "best_baseline_mean": best,
            "alkdrec_mean": alkdrec,
            "star": star,
        }

    local = [
        row("fpmc", "ALKDRec", 0.011, 0.011, 0.010, True),
        row("fpmc", "DLLM2Rec", 0.004, 0.011, 0.010, True),
        row("stamp", "ALKDRec", 0.006, 0.006, 0.008, False),
        row("stamp", "DLLM2Rec", 0.009, 0.006, 0.008, False),
    ]
    recorded = [
        row("fpmc", "ALKDRec", 0.020, 0.020, 0.010, True),
        row("fpmc", "DLLM2Rec", 0.003, 0.020, 0.010, True),
        row("stamp", "ALKDRec", 0.005, 0.005, 0.008, False),
        row("stamp", "DLLM2Rec", 0.009, 0.005, 0.008, False),  # a tie: not above
    ]
    pd.DataFrame(local).to_csv(tmp_path / "table1_main_local.csv", index=False)
    pd.DataFrame(recorded).to_csv(tmp_path / "table1_main.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    section = text.split("## Table 1 with the local LLM teacher", 1)[1]
    section = section.split("\n## ", 1)[0]
    assert (
        "- ALKDRec with the local teacher is ahead of the best KD baseline in "
        "1 of 2 dataset-backbone-metric cells, significantly (Welch t-test over "
        "seeds, p < 0.05) in 1."
    ) in section
    assert (
        "- ALKDRec: the local teacher's mean is above the recorded GPT-4 "
        "answers' in 1 of 2 backbone-metric values."
    ) in section
    assert (
        "- DLLM2Rec: the local teacher's mean is above the recorded GPT-4 "
        "answers' in 1 of 2" in section
    )
    assert "ALKDRec-exact:" not in section  # no such rows, no statement


def test_readme_names_the_command_that_made_the_tables(tmp_path):
    _table1(tmp_path)
    assert "Generated by `bash run_all.sh` from" in results_readme.build(
        tmp_path, "quick"
    )
    assert "Generated by `bash run_all.sh --profile seeds3` from" in (
        results_readme.build(tmp_path, "seeds3")
    )
    partial = "papermill notebooks/table2_ablation.ipynb -p compute False"
    text = results_readme.build(tmp_path, "paper", partial)
    assert f"Generated by `{partial}` from" in text
    assert "run_all.sh" not in text.split("\n")[2]


def test_main_refuses_a_wrong_argument_count(tmp_path, capsys):
    assert results_readme.main([str(tmp_path)]) == 2
    assert "Usage" in capsys.readouterr().err
    assert not (tmp_path / "README.md").exists()


def test_one_seed_tables_claim_no_spread_no_test_and_no_run_in_progress(tmp_path):
    # the quick profile: every row has one seed, which is complete, not thin
    _table1(tmp_path)
    frame = pd.read_csv(tmp_path / "table1_main.csv").assign(n_seeds=1, std=0.0)
    frame.to_csv(tmp_path / "table1_main.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert "One seed a row: no spread and no t-test" in text
    assert "Welch" not in text
    assert "still in progress" not in text
    assert "± 0.0000" not in text and "| 0.0200 |" in text


def test_figures_say_how_many_seeds_each_point_averages(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "figure2a_dim.png").write_bytes(b"png")
    rows = [{"dim": 10, "method": "Student", "seed": s} for s in range(5)]
    pd.DataFrame(rows).to_csv(tmp_path / "figure2a.csv", index=False)
    text = results_readme.build(tmp_path, "paper")
    assert "the mean over 5 seeds, the band" in text
    assert "![figure2a_dim](figures/figure2a_dim.png)" in text

    pd.DataFrame(rows[:1]).to_csv(tmp_path / "figure2a.csv", index=False)
    text = results_readme.build(tmp_path, "quick")
    assert "the mean over 1 seed." in text and "band" not in text


def test_figure2a_is_put_in_words_per_dimension(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "figure2a_dim.png").write_bytes(b"png")
    rows = []
    for seed, (student, alkdrec) in enumerate([(0.1, 0.3), (0.2, 0.2), (0.3, 0.1)]):
        rows.append({"dim": 10, "method": "Student", "seed": seed, "ndcg@10": student})
        rows.append({"dim": 10, "method": "ALKDRec", "seed": seed, "ndcg@10": alkdrec})
    pd.DataFrame(rows).to_csv(tmp_path / "figure2a.csv", index=False)
    text = results_readme.build(tmp_path, "paper")
    assert (
        "- Figure 2a, d = 10: ALKDRec 0.2000 vs Student 0.2000 (ndcg@10); "
        "ALKDRec ahead in 1 of 3 seeds, equal in 1." in text
    )
