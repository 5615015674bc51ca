"""UltraMedical's multiple-choice suite (MedQA, MedMCQA, PubMedQA, six MMLU medical subsets) on lm-eval.

The task configs (``*_loglik.yaml``, ``*_cot.yaml``, and the ``ultramedical_loglik`` / ``ultramedical_cot``
groups) and ``prompts.py`` live in this folder and also run under the plain ``lm_eval`` command line
(``--include_path``); ``data/`` holds the bundled demo items (see data_cards/ultramedical_bundled.md) and
``reported.json`` UltraMedical's reported results. ``promedical-bench ultramedical`` (bench/cli/ultramedical.py)
drives :func:`run_ultramedical`; see docs/ultramedical.md.
"""

from promedical.bench.ultramedical.prompts import NO_ANSWER, extract_answer
from promedical.bench.ultramedical.suite import (
    BUNDLED_DIR,
    COLUMNS,
    PROTOCOLS,
    TASK_DIR,
    TASK_NAMES,
    UltraMedicalConfig,
    UltraMedicalOutcome,
    fetch_data,
    reported_rows,
    run_ultramedical,
    task_id,
)

__all__ = [
    "BUNDLED_DIR", "COLUMNS", "NO_ANSWER", "PROTOCOLS", "TASK_DIR", "TASK_NAMES", "UltraMedicalConfig",
    "UltraMedicalOutcome", "extract_answer", "fetch_data", "reported_rows", "run_ultramedical", "task_id",
]
