"""Ray job: process a cohort of UK Biobank tagging zips (thin wrapper over ``raytag run``).

    ray job submit --submission-id raytag-cohort-2026-01 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/process_cohort.py --input s3://bucket/20211/ --output s3://bucket/results/

Inside a Ray job ``RAY_ADDRESS`` is set, so this joins the cluster. Resubmitting after an
interruption completes the cohort exactly once (a stable submission id makes Ray reject
an accidental duplicate submission while the first is alive).
"""

import sys

from raytag.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
