"""Ray job: write a synthetic UK Biobank-style cohort (thin wrapper over ``raytag synth``).

    ray job submit --submission-id raytag-synth-1001 --working-dir . \
        --runtime-env cluster/runtime_env.yaml -- \
        python jobs/synth_cohort.py --participants 1000 --seed 1001 --out s3://bucket/synth/

Participants are generated in parallel Ray tasks on the cluster (``RAY_ADDRESS`` is set
inside a job); zips and the truth table are written straight to ``--out``. The cohort is
deterministic in ``--seed``, so a rerun rewrites the same bytes.
"""

import sys

from raytag.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
