"""Findings and the rule catalog.

Every finding code loravet can emit is documented exactly once, here, as a :class:`Rule`: what it
detects, why it matters, how to fix it, and an example. ``loravet explain CODE`` and
``docs/findings.md`` are generated from this table; the checks refer to rules by code and never
restate their text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = [
    "FINDING_RULES",
    "Finding",
    "Rule",
    "Severity",
    "catalog_markdown",
    "make_finding",
]


class Severity(IntEnum):
    """Ordered so that ``a >= b`` means "a is at least as bad as b"."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (critical, high, medium, low, info)") from None


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    title: str
    detects: str
    why: str
    fix: str
    example: str


@dataclass
class Finding:
    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.label,
            "message": self.message,
            "evidence": self.evidence,
        }


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.code: r for r in rules}


S = Severity

FINDING_RULES: dict[str, Rule] = _rules(
    Rule(
        "shape-mismatch",
        S.CRITICAL,
        "Tensor shape differs from its base module",
        "A tensor in the adapter file has a different shape from the parameter PEFT creates for it on "
        "this base (e.g. lora_A of width 2560 on a module of width 1536).",
        "`PeftModel.from_pretrained` raises `RuntimeError: size mismatch` while loading the state dict: "
        "the adapter cannot be used on this base at all.",
        "Load the adapter on the base it was trained on (see `architecture.best_match`), or retrain it.",
        "lora_A of shape [16, 2560] (Qwen3-4B hidden size) against q_proj of Qwen2.5-1.5B (in 1536).",
    ),
    Rule(
        "target-not-found",
        S.CRITICAL,
        "No base module matches target_modules",
        "PEFT's target matching (list suffixes, full-match regex, all-linear, exclude_modules, "
        "layers_to_transform) selects no module of the base, or selects one whose type LoRA cannot wrap.",
        "PEFT raises (`Target modules ... not found in the base model` / `... is not supported`).",
        "Fix `target_modules` to name modules the base has, e.g. `q_proj` for Llama/Qwen, `c_attn` for "
        "GPT-2, `query_key_value` for GPT-NeoX.",
        'target_modules ["query", "value"] (BERT names) on a Qwen2 base.',
    ),
    Rule(
        "unsafe-pickle",
        S.CRITICAL,
        "Pickle imports something outside the allow-list",
        "A pickle-bearing file (adapter_model.bin, train.pkl, training_args.bin, ...) imports a global "
        "outside loravet's allow-list. Critical for known code-execution primitives (os.system, "
        "subprocess, builtins.eval/exec, runpy, pydoc.locate, ...), high for anything merely unknown.",
        "Opening the file with `pickle.load` or `torch.load(weights_only=False)` runs that code with your permissions.",
        "Do not open the file. Ask the author for safetensors weights and CSV/Parquet artifacts.",
        "train.pkl whose pickle calls `posix.system('curl ... | sh')`.",
    ),
    Rule(
        "missing-weights",
        S.HIGH,
        "Created modules get no tensor",
        "Modules that PEFT creates on this base for the config (LoRA A/B, DoRA magnitude, "
        "modules_to_save copies) receive no tensor from the file.",
        "They stay at their initial value: zero delta (lora_B zeros) so those layers are not adapted, or "
        "random noise when `init_lora_weights` is false. PEFT only warns, if at all.",
        "Use the base the adapter was trained on (layer count, module names), or fix the config's "
        "target_modules / layers_to_transform to what the file contains.",
        "A 24-layer adapter on a 28-layer base: layers 24-27 get no LoRA tensors.",
    ),
    Rule(
        "modules-to-save-missing",
        S.CRITICAL,
        "A modules_to_save module has no tensor in the file",
        "The config's modules_to_save wraps a module of this base (a classification head, an embedding) but the "
        "weight file holds no tensor for its trainable copy.",
        "Unlike a missing LoRA tensor (`missing-weights`, which PEFT leaves at its initial value), PEFT raises a "
        "KeyError while translating the state dict's keys: the adapter cannot be loaded at all.",
        "Get the file saved with the head (PEFT saves modules_to_save copies itself), or load it on a base and "
        "task type whose head the file does carry.",
        "A SEQ_CLS adapter whose file lacks `score.modules_to_save.default.weight`.",
    ),
    Rule(
        "unused-weights",
        S.HIGH,
        "File tensors land nowhere",
        "Tensors in the weight file that map to no parameter of the PEFT model on this base: extra "
        "layers, renamed key prefixes, a classification head on a causal LM.",
        "They are silently dropped by `load_state_dict(strict=False)`: part (or all) of the training is "
        "thrown away without an error.",
        "Check the key prefix (`base_model.model.`), the layer count and the head type of the base.",
        "Keys saved as `model.layers.0...` instead of `base_model.model.model.layers.0...`.",
    ),
    Rule(
        "base-weights-overwritten",
        S.MEDIUM,
        "File tensors replace base parameters",
        "Tensors in the file that are not adapter parameters but land on base parameters, e.g. "
        "`score.weight` saved while `modules_to_save` is null, or biases saved with `bias='all'`.",
        "The adapter silently modifies the base model's own weights; unloading the adapter does not undo "
        "it, and the head may come from a different label set.",
        "Declare such modules in `modules_to_save`, or drop them from the file.",
        "gpt2 SEQ_CLS adapter with `score.weight` in the file and modules_to_save null.",
    ),
    Rule(
        "zero-update",
        S.HIGH,
        "The update is zero where it lands",
        "Every landing lora_B (or lora_embedding_A/B) is all zeros, with no DoRA magnitude and no lora_B "
        "bias to move the output. (Zero on some of the landing modules only: `zero-update-partial`.)",
        "The adapter does nothing on those modules: predictions equal the base model's.",
        "The file is probably an untrained initialisation or a broken export; get the trained weights.",
        "lora_B.weight of all 224 modules exactly 0.0.",
    ),
    Rule(
        "zero-update-partial",
        S.MEDIUM,
        "The update is zero on some of the modules where it lands",
        "Some, not all, of the modules where tensors land have an all-zero lora_B (or lora_embedding_A/B) and no "
        "DoRA magnitude or lora_B bias to move their output. (All of them: `zero-update`.)",
        "Those modules are not adapted: part of what the adapter claims to train (layers, projections) was "
        "never trained or was lost in an export, while the rest still changes the output.",
        "Check the training run (frozen layers, a failed merge of shards) or get the complete weights.",
        "lora_B of layers.0 zero on q_proj and v_proj; layers 1-27 trained.",
    ),
    Rule(
        "nonfinite-weights",
        S.CRITICAL,
        "NaN or Inf in a tensor",
        "A tensor in the weight file contains NaN or +/-Inf.",
        "Any forward pass through that module yields NaN: every prediction becomes NaN or a constant.",
        "Retrain with a lower learning rate / fp32 master weights, or take an earlier checkpoint.",
        "lora_B of layers.3.mlp.down_proj contains 12 NaN values.",
    ),
    Rule(
        "architecture-mismatch",
        S.CRITICAL,
        "Tensor shapes fit a different base",
        "The shapes and layer count of the adapter's tensors match a different catalog base than the one "
        "the config names (or than the one given with --base).",
        "The config was edited or the wrong base is named: PEFT raises on the mismatch, or loads part of "
        "it and predicts garbage.",
        "Use the base the tensors were trained on (`architecture.best_match`).",
        "Config names Qwen2.5-1.5B-Instruct but the tensors have 36 layers of width 2560 (Qwen3-4B).",
    ),
    Rule(
        "base-name-conflict",
        S.HIGH,
        "Names disagree about the base model",
        "Model families or sizes named in folder names, hub ids, README/model card and config disagree "
        "with each other or with the traced architecture.",
        "A name like 'reddit-4b-think' next to a config naming 1.5B means someone edited something: "
        "the adapter may not be what it claims.",
        "Find out which base the adapter was trained on; prefer adapters whose names, card and config agree.",
        "Folder 'reddit-4b-think' with base_model_name_or_path 'Qwen/Qwen2.5-1.5B-Instruct'.",
    ),
    Rule(
        "config-weights-disagree",
        S.HIGH,
        "adapter_config.json and the weights disagree",
        "The rank, target modules or layers that the weight file contains differ from what "
        "adapter_config.json declares.",
        "PEFT builds modules from the config and then loads the file: a disagreement means shape errors, "
        "dropped tensors, or modules left untrained.",
        "Regenerate adapter_config.json from the training run, or fix r / target_modules to match the file.",
        "Config says r=16 but every lora_A has 8 rows.",
    ),
    Rule(
        "size-implausible",
        S.MEDIUM,
        "File size far from what its tensors imply",
        "The weight file's size differs from the size its header implies (header + sum of dtype x shape), "
        "e.g. padding, an appended payload, or truncation.",
        "A truncated file fails to load; extra bytes can hide a payload or signal a broken upload.",
        "Re-download the file and compare its hash with the source.",
        "adapter_model.safetensors is 50 MB while its tensors need 8.7 MB.",
    ),
    Rule(
        "unreadable-file",
        S.HIGH,
        "A file cannot be parsed",
        "A file the adapter needs (adapter_config.json, the weight file, an artifact) cannot be parsed: "
        "bad JSON, a truncated or hostile safetensors header, a corrupt archive, a FIFO or device in its place. "
        "(Absent: `config-missing` / `weights-file-missing`; a link leaving the folder: `path-escape`; an archive "
        "built to escape: `unsafe-archive`.)",
        "PEFT would raise on it, or loravet cannot check what it contains.",
        "Re-download or regenerate the file.",
        "adapter_config.json ends in the middle of a string.",
    ),
    Rule(
        "config-missing",
        S.HIGH,
        "No adapter_config.json beside the weights",
        "The adapter folder holds a weight file but no adapter_config.json.",
        "PEFT cannot build the adapter without its config (`PeftModel.from_pretrained` raises), and loravet "
        "cannot check the weights against the modules the config would create.",
        "Get the adapter_config.json the adapter was saved with; do not write one by guesswork.",
        "A folder with adapter_model.safetensors and README.md only.",
    ),
    Rule(
        "path-escape",
        S.HIGH,
        "A symbolic link leaves the adapter folder",
        "A file the adapter needs (adapter_config.json, the weight file) is a symbolic link to somewhere outside "
        "the adapter folder (or outside its hub repository's blobs/), which loravet does not follow.",
        "What loads would be whatever the link points at on the machine that opens it (a system file, another "
        "user's data, a device), not what was published; loravet did not check it.",
        "Replace the link with the file itself, inside the adapter folder.",
        "adapter_model.safetensors -> /home/someone/other-model/adapter_model.safetensors.",
    ),
    Rule(
        "unsafe-archive",
        S.CRITICAL,
        "The archive is built to escape or to exhaust",
        "A zip or tar archive given as the adapter holds members that would be written outside the folder it "
        "is extracted into (absolute or `..` paths, links) or decompress to far more than the archive (a bomb). "
        "loravet does not extract it.",
        "Extracting it with ordinary tools can overwrite files elsewhere on disk or fill it up.",
        "Do not extract it; ask for the adapter as plain files (adapter_config.json and safetensors weights).",
        "adapter.zip with a member named `../../.bashrc`.",
    ),
    Rule(
        "unsupported-adapter-type",
        S.MEDIUM,
        "Not a LoRA adapter loravet can judge",
        "The adapter is not a PEFT LoRA adapter (e.g. PREFIX_TUNING, IA3, an mlx-lm or AdapterHub config), "
        "or uses a LoRA variant loravet does not model.",
        "loravet cannot predict how it loads, so `load_outcome` is `unknown`.",
        "Check it with the tool it was made for, or load it with PEFT and test it directly (loravet eval).",
        'peft_type "PREFIX_TUNING" for flan-t5-xl.',
    ),
    Rule(
        "no-training-evidence",
        S.MEDIUM,
        "No training evidence of any kind",
        "No train/validation artifacts, trainer_state.json, training_args.bin, logs, or model card training details.",
        "Nothing shows what data the adapter was trained on, how it was validated, or that it was trained at all.",
        "Prefer adapters that publish their splits and training logs.",
        "A folder with only adapter_config.json and adapter_model.bin.",
    ),
    Rule(
        "train-val-overlap",
        S.HIGH,
        "Train and validation share comments",
        "The same normalised comment text appears in an adapter's train and validation artifacts.",
        "Its validation scores are inflated: the model saw those rows while training.",
        "Split by group (normalised text) so duplicates stay on one side.",
        "train.pkl and val.pkl share 37 comment texts.",
    ),
    Rule(
        "train-val-near-duplicate",
        S.MEDIUM,
        "Train and validation share near-identical comments",
        "Validation comments whose word 3-gram Jaccard similarity to a training comment is at least 0.8 without "
        "being the same text (a changed URL, a typo, a spam template with another product).",
        "Validation scores are optimistic on those rows: the model saw almost the same comment.",
        "Group near-duplicates (e.g. by MinHash clusters) before splitting.",
        "'Highlights and Interviews: http://swish.io/game/nba/nba-lakers-raptors-20161202 ...' in train and "
        "'Highlights & Interviews: http://swish.io/game/nba/nba-magic-76ers-20161202 ...' in val (real ACRC rows).",
    ),
    Rule(
        "fold-overlap",
        S.HIGH,
        "k-fold siblings overlap",
        "A row appears in two k-fold siblings' validation splits, two siblings have identical splits, or "
        "two siblings have identical weights. (Rows in no sibling's validation split: `fold-unvalidated`.)",
        "The folds are not folds: out-of-fold scores and the ensemble are not what they claim.",
        "Rebuild the folds with a grouped split; retrain the duplicated fold.",
        "fold1 and fold3 validation splits share 41 rows.",
    ),
    Rule(
        "fold-unvalidated",
        S.LOW,
        "Rows the k-fold set never validates",
        "Comment texts in the union of the k-fold siblings' splits that are in no sibling's validation split "
        "(checked when every sibling of the set is given).",
        "Out-of-fold scores do not cover those rows, so a score over 'all folds' is over fewer rows than the "
        "training data; usually a split that dropped or duplicated rows.",
        "Rebuild the folds so that every row is validated exactly once.",
        "12 comment texts of the folds' union are in no validation split.",
    ),
    Rule(
        "eval-contamination",
        S.CRITICAL,
        "Your evaluation rows are in its training data",
        "Rows of the user's evaluation data appear in the adapter's training artifacts.",
        "Every local score on that data is a lie: the adapter memorised them.",
        "Evaluate on rows the adapter never saw, or retrain without them.",
        "31% of holdout.csv's comments are in the adapter's train.pkl.",
    ),
    Rule(
        "degenerate-predictions",
        S.HIGH,
        "Scores are degenerate",
        "The adapter's scores are constant (std < 1e-6), >= 99% below 0.01 or above 0.99, non-finite, or "
        "indistinguishable from the bare base (max abs difference < 1e-4).",
        "The adapter does not discriminate: a submission of all 0.0 scores nothing.",
        "Run `loravet check` for the static cause; do not ensemble it.",
        "Every score 0.0 for 48 rows.",
    ),
    Rule(
        "weights-file-missing",
        S.CRITICAL,
        "No weight file",
        "The adapter has adapter_config.json but neither adapter_model.safetensors nor adapter_model.bin.",
        "PEFT raises when it looks for the weights.",
        "Download the weight file as well.",
        "A hub snapshot that only contains adapter_config.json.",
    ),
    Rule(
        "unknown-config-keys",
        S.INFO,
        "Unknown keys in adapter_config.json",
        "Keys that no LoRA config of any PEFT version writes (hand-written notes, a newer PEFT's fields).",
        "PEFT drops unknown keys with a warning; a key from a newer PEFT may change behaviour that older "
        "releases ignore.",
        "Remove hand-written keys, or upgrade PEFT if the key is a newer PEFT field.",
        '"_note": "Config from mahmoudmohamed/reddit-4b-think dataset"',
    ),
    Rule(
        "legacy-config-schema",
        S.LOW,
        "Old PEFT config schema",
        "adapter_config.json uses keys of early PEFT/LoRA releases (enable_lora, merge_weights).",
        "Current PEFT ignores them; the adapter was made with a very old toolchain and may use an old key layout.",
        "Re-save the adapter with a current PEFT release.",
        '"enable_lora": null, "merge_weights": false',
    ),
    Rule(
        "invalid-config",
        S.CRITICAL,
        "Config that PEFT rejects",
        "adapter_config.json has values PEFT refuses when it builds the config or injects the adapter "
        "(layers_to_transform with a regex target, lora_bias with DoRA, a non-positive rank, ...).",
        "`PeftModel.from_pretrained` raises.",
        "Fix the listed field.",
        '"target_modules": ".*q_proj", "layers_to_transform": [0, 1]',
    ),
    Rule(
        "base-unresolved",
        S.INFO,
        "No base could be resolved",
        "Neither --base nor the config's base_model_name_or_path resolves to a local folder, a cached hub "
        "model, a catalog entry, or a hub repository read header-only (the message gives the hub's answer: "
        "offline, not found, refused).",
        "Compatibility cannot be judged: `load_outcome` is `unknown`.",
        "Pass --base with a local model folder or a catalog name (see `loravet bases`).",
        'base_model_name_or_path "C:\\\\Users\\\\me\\\\models\\\\qwen3"',
    ),
    Rule(
        "kfold-inconsistent",
        S.MEDIUM,
        "k-fold siblings were not trained alike",
        "Siblings of one k-fold set differ in rank, alpha, target modules, dropout or named base.",
        "Their scores are not comparable and their ensemble mixes different models; one of them may come "
        "from another run.",
        "Use siblings from the same training run; check the odd one's provenance.",
        "fold0-fold3 have r=8 on q/k/v/o, fold4 has r=16 on q/v.",
    ),
    Rule(
        "base-variant-vague",
        S.LOW,
        "The config names a generic base; elsewhere a quantized variant",
        "adapter_config.json names an unquantized base while the folder name, hub id or model card points to a "
        "GPTQ/AWQ/bitsandbytes variant (the tensors cannot tell: LoRA on a quantized base has the fp16 shapes).",
        "Loading on the wrong variant works but shifts the base's outputs the adapter was trained against.",
        "Load the variant the adapter was trained on; ask the author which one.",
        "config: Qwen/Qwen2.5-1.5B-Instruct; model card base_model: Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4.",
    ),
    Rule(
        "vllm-incompatible",
        S.MEDIUM,
        "vLLM would refuse or ignore part of it",
        "Features vLLM's LoRA support does not serve: a rank above its largest max_lora_rank (512), DoRA, "
        "lora_bias, modules_to_save other than a classification head (older releases reject any), or "
        "rank/alpha patterns (ignored by older releases).",
        "The adapter works in PEFT but fails to load, or silently behaves differently, when served with vLLM.",
        "Retrain without the feature, or serve with PEFT/transformers instead of vLLM.",
        "use_dora true: vLLM raises when loading the adapter.",
    ),
    Rule(
        "vllm-settings",
        S.LOW,
        "vLLM needs a non-default setting",
        "The adapter's rank is above vLLM's default max_lora_rank (16): the server must be started with "
        "--max-lora-rank set to at least the adapter's rank (one of vLLM's supported values).",
        "With the default, vLLM refuses the adapter at load time.",
        "Start vLLM with the --max-lora-rank value given in the evidence.",
        "r=64: start vLLM with --max-lora-rank 64.",
    ),
    Rule(
        "merge-refused",
        S.MEDIUM,
        "Cannot be merged into the named base",
        "The named base is GPTQ- or AWQ-quantized: PEFT refuses merge_and_unload on those layers.",
        "A deployment that merges adapters into the base weights fails for this base.",
        "Merge into the fp16 base instead, or serve the adapter unmerged.",
        "base Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4: merge_and_unload raises.",
    ),
    Rule(
        "merge-lossy",
        S.LOW,
        "Merging rounds the update",
        "The named base is bitsandbytes 4/8-bit: merging dequantizes, adds the update and quantizes again.",
        "The merged model differs slightly from the adapter applied unmerged.",
        "Merge into the fp16/bf16 base if exact behaviour matters.",
        "base unsloth/qwen2.5-7b-instruct-bnb-4bit.",
    ),
    Rule(
        "random-init-modules",
        S.HIGH,
        "Modules start from random noise",
        "Modules PEFT creates get no tensor while `init_lora_weights` is false (or an init that changes "
        "the output), so they start from random values.",
        "Random LoRA deltas add noise to every forward pass through those modules.",
        "Provide the missing tensors or set `init_lora_weights` to true.",
        "init_lora_weights false and the file lacks layers 20-27.",
    ),
    Rule(
        "remote-not-fetched",
        S.INFO,
        "Hub files left on the hub",
        "An `hf:` adapter was checked header-only: some of its repository's files are over the fetch caps "
        "(or not needed) and were not downloaded; the finding lists them with their sizes.",
        "Checks that read those files (training artifacts, logs) did not see them; a pickle-bearing zip among "
        "them was still scanned through range reads of its central directory and pickle members.",
        "Download the repository and check the local folder to judge those files too.",
        "optimizer.pt (1.2 GB) not fetched; its data.pkl was scanned by range reads.",
    ),
    Rule(
        "weights-header-only",
        S.LOW,
        "Only the weight file's header was read",
        "Only the header (names, dtypes, shapes) of the adapter's weight file on the hub was read, by an HTTP "
        "range request: a static check fetches no tensor data unless LORAVET_HUB_VALUES_CAP allows it and "
        "the file is under that size.",
        "Zero updates and NaN/Inf values cannot be seen from a header: a load outcome that depends on them "
        "is reported as unknown instead of a guess.",
        "Check a local copy of the adapter, or set LORAVET_HUB_VALUES_CAP (bytes, e.g. 67108864) to fetch "
        "weight files up to that size.",
        "adapter_model.safetensors (8.7 MB): header only; LORAVET_HUB_VALUES_CAP is 0.",
    ),
    Rule(
        "base-metadata-unavailable", S.MEDIUM, "The base's hub metadata could not be had",
        "The base was named as an `hf:` id, or as a hub id the catalog knows only by alias or by family and "
        "size (by --base or by the adapter's config), but its config.json or safetensors headers could not be "
        "fetched "
        "(gated, 401/403, not found, missing revision, timeout, offline); the message says why and what was "
        "assumed instead (the built-in catalog's shapes, or config.json without headers).",
        "The verdict rests on an assumed architecture, not on the base the adapter will really be used with.",
        "Set HF_TOKEN for a gated base, fix the id or revision, or pass a local copy with --base.",
        "hf:Qwen/Qwen2.5-1.5B-Instruct: the hub answered 401; assumed the catalog entry's shapes.",
    ),
    Rule(
        "config-nonfinite",
        S.CRITICAL,
        "lora_alpha is NaN, infinite, or too large for float32",
        "adapter_config.json gives `lora_alpha` (or an `alpha_pattern` value) as NaN or Infinity, which "
        "Python's json module (and so PEFT) accepts, or so large that lora_alpha / r (rsLoRA: / sqrt(r)) "
        "exceeds float32's largest value even at the largest rank the config names (e.g. 1e300).",
        "PEFT loads the adapter without complaint and scales every update by NaN or Infinity (a finite scaling "
        "that large becomes Infinity in float32, bf16 and fp16): every output of the model becomes Inf or NaN.",
        "Set lora_alpha to the finite value the adapter was trained with (often 2r or r).",
        '"lora_alpha": Infinity on an adapter whose weights load: PEFT reports success, the logits are NaN.',
    ),
    Rule(
        "regex-catastrophic",
        S.CRITICAL,
        "A config regex backtracks catastrophically",
        "A regular expression from the config (target_modules or exclude_modules as a string, a rank_pattern or "
        "alpha_pattern key, modules_to_save, layers_pattern) takes longer than loravet's time bound on one "
        "module name with Python's `re`, the engine PEFT uses.",
        "PEFT matches these patterns with `re` against every module name of the base: it would hang (for "
        "hours or forever) inside `PeftModel.from_pretrained`. Such a pattern is a denial of service.",
        "Write target_modules as a list of names, or as a regex without nested quantifiers such as `(a+)+`.",
        'target_modules "(.*a){30}$": matching one module name takes longer than the age of the universe.',
    ),
    Rule(
        "regex-unchecked",
        S.HIGH,
        "A config regex loravet could not time here",
        "A regular expression from the config (as for `regex-catastrophic`) could not be matched under loravet's "
        "time bound in this process (e.g. loravet runs outside the main thread, where the bound cannot be "
        "enforced), so whether PEFT would hang on it is not decided.",
        "If the pattern backtracks catastrophically, `PeftModel.from_pretrained` hangs; `load_outcome` is "
        "`unknown` rather than a guess.",
        "Run the check from the main thread (the CLI does), or write target_modules as a list of names.",
        'target_modules "(a+)+$" checked from a worker thread of a web server.',
    ),
    Rule(
        "analysis-error",
        S.HIGH,
        "The analysis of this adapter stopped on an error",
        "Something in the adapter's files made loravet's analysis raise (the exception type and a one-line "
        "message are in the evidence). The other adapters of the run are analysed as usual.",
        "What was not analysed cannot be vouched for: the adapter's other findings may be incomplete.",
        "Inspect the file named in the message; report the error to loravet if the file is a valid adapter.",
        "RecursionError while reading a config nested 100,000 levels deep.",
    ),
    Rule(
        "analysis-budget",
        S.HIGH,
        "The analysis of this adapter ran out of time or memory",
        "One adapter's analysis took longer than the per-adapter time budget (LORAVET_ADAPTER_BUDGET_S, "
        "300 s by default) or needed more memory than its budget (LORAVET_ADAPTER_MEMORY_MB, 8,192 MiB by "
        "default, Linux) and was stopped. The other adapters of the run are analysed as usual.",
        "Files built to be slow to analyse are hostile or broken; what was not analysed cannot be vouched for.",
        "Inspect the adapter's files by hand, or raise the budget if the adapter is legitimately huge.",
        "A folder of 300,000 tensors, stopped after 300 s.",
    ),
    Rule(
        "scan-incomplete",
        S.HIGH,
        "Part of the adapter folder was not scanned for pickles",
        "The pickle scan reached one of its bounds (files, folder depth, archive members or nesting, "
        "decompressed bytes, time) or met a symbolic link leaving the folder, and lists what it did not read.",
        "A file it did not read may run code when a loader (`torch.load`, `pandas.read_pickle`, "
        "`joblib.load`, `pickle.load`) opens it: no `unsafe-pickle` finding is not a clean bill of health.",
        "Remove what the adapter does not need (checkpoints, caches, archives) and check again.",
        "a torch zip with 250,000 members: only the first 200,000 (and every *.pkl) read.",
    ),
    Rule(
        "peft-raises",
        S.CRITICAL,
        "PEFT raises while loading it",
        "Replayed with the installed PEFT on a weightless copy of the base, `PeftModel.from_pretrained` raises "
        "for a reason no more specific code names (a config PEFT rejects, a peft_type it does not know, a "
        "task type or module it cannot wrap, ...). The evidence carries PEFT's own message.",
        "The adapter cannot be loaded at all with this PEFT version and base.",
        "Read PEFT's message in the evidence: fix the config, upgrade PEFT, or use the base it was made for.",
        "peft_type \"none\": KeyError 'none' from PEFT's config mapping.",
    ),
    Rule(
        "load-undecided",
        S.INFO,
        "Whether it changes the output cannot be decided",
        "PEFT loads the adapter, but whether it changes the model's output cannot be decided from the adapter's "
        "files alone: a PEFT type without an identity rule, tensors that replace base values (modules_to_save, "
        "token rows, DoRA magnitudes with a zero update) whose effect depends on the base's weights, or values "
        "that cannot be read. `load_outcome` is then `unknown` rather than a guess.",
        "`loads` or `inert` would be a guess; the evidence says what is missing.",
        "Point --base at a local folder with the base's weights, or evaluate the adapter (`loravet eval`).",
        "DoRA with every lora_B zero: inert only if the magnitudes equal the base's column norms.",
    ),
)


def make_finding(code: str, message: str, severity: Severity | None = None, **evidence: Any) -> Finding:
    """Build a finding for a catalogued rule; the severity defaults to the rule's."""
    rule = FINDING_RULES[code]
    return Finding(
        code=code, severity=severity if severity is not None else rule.severity, message=message, evidence=evidence
    )


def catalog_markdown() -> str:
    """The finding catalog as Markdown (docs/findings.md is generated from this)."""
    lines = [
        "# Finding catalog",
        "",
        "Generated from `loravet.findings.FINDING_RULES` (`loravet explain --all --format md`).",
        "",
        "| code | default severity | what it detects |",
        "|---|---|---|",
    ]
    for rule in FINDING_RULES.values():
        lines.append(f"| [`{rule.code}`](#{rule.code}) | {rule.severity.label} | {rule.title} |")
    for rule in FINDING_RULES.values():
        lines += [
            "",
            f"## {rule.code}",
            "",
            f"**{rule.title}** (default severity: {rule.severity.label})",
            "",
            f"**What it detects.** {rule.detects}",
            "",
            f"**Why it matters.** {rule.why}",
            "",
            f"**How to fix.** {rule.fix}",
            "",
            f"**Example.** {rule.example}",
        ]
    return "\n".join(lines) + "\n"
