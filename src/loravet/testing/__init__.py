"""Test support: builders of adapters, bases, scenarios and hostile files, and the ground truth of what PEFT
does, for the tests, `bench/`, `scripts/` and (where it builds the same things) the demo. Not imported by
loravet itself.

- adapters: PEFT-format LoRA adapters written with numpy (lora_config_dict, write_synthetic_adapter).
- data: generated ACRC-schema rows (generate_rows, ACRC_RULE_TEXTS, write_csv).
- scenarios: the static demo's adapters and the seed document's situation (build_static_scenario,
  build_seed_scenario, grouped_kfold, write_split).
- hostile: hostile and benign pickle-bearing files (and the demo's malicious adapter_model.bin).
- hub_repos, hub_server: generated hub repositories and a local hub serving them.
- models: tiny real transformers bases (FAMILIES, build_base, load_base, meta_model, build_tiny_lm). torch.
- peft_truth: real adapters made by peft and what PeftModel.from_pretrained does with them. torch, peft.
- peft_cases: the differential suite and its agreement table. torch, peft.
- cli: the loravet CLI in a subprocess (run_cli, cli_json).
- browser: headless Chromium (DOM dump, screenshot).
"""
